"""Drive the demo page from Python (Playwright + a real Chromium): the device lab's entry point.

`run_page_benchmark(...)` opens the page in benchmark mode and returns the JSON the page publishes
(window.__benchResult; the page also POSTs it to /api/bench-results). `find_chromium()` locates a browser:
Playwright cannot download one everywhere (this project's CI has no network), so a system Chromium is
preferred and a Playwright-managed one is the fallback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# WebGPU in headless Chromium, including the SwiftShader software adapter on machines without a GPU; the
# other flags keep a test browser from phoning home or updating itself.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
)
_SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "chrome")
_SYSTEM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium", "/usr/bin/google-chrome",
                 "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                 "/Applications/Chromium.app/Contents/MacOS/Chromium")


class ChromiumNotFound(RuntimeError):
    """No usable Chromium: the message lists what was tried and how to fix it."""


class PageError(RuntimeError):
    """The page did not publish a result in time (or crashed); the message carries its error text and log tail."""


def find_chromium(explicit: str | None = None) -> str:
    """Path of a Chromium to launch: `explicit`, $GEMMA_EDGE_CHROMIUM, a system browser, or Playwright's own."""
    tried: list[str] = []
    for candidate in (explicit, os.environ.get("GEMMA_EDGE_CHROMIUM")):
        if candidate:
            if Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return candidate
            tried.append(f"{candidate} (not an executable file)")
    for name in _SYSTEM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    tried.append(f"PATH: {', '.join(_SYSTEM_NAMES)}")
    for path in _SYSTEM_PATHS:
        if Path(path).is_file():
            return path
    tried.extend(_SYSTEM_PATHS)
    managed = _playwright_chromium()
    if managed:
        return managed
    tried.append("Playwright's managed chromium (run `playwright install chromium`)")
    raise ChromiumNotFound(
        "no Chromium found; install one (Debian: `apt-get install chromium`), run `playwright install chromium`, "
        "or set GEMMA_EDGE_CHROMIUM=/path/to/chrome. Tried: " + "; ".join(tried)
    )


def _playwright_chromium() -> str | None:
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:
        return None
    return path if path and Path(path).is_file() else None


@contextlib.contextmanager
def launch_browser(chromium_path: str | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A Playwright Browser on a fresh profile (no state leaks between runs); closed and deleted afterwards."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium(chromium_path)
    with tempfile.TemporaryDirectory(prefix="gemma-edge-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *extra_args],
        )
        try:
            yield context
        finally:
            context.close()


RUNTIMES = ("auto", "mediapipe", "litert-lm")
"""The page's runtime choices: auto picks by the bundle's format (.task: MediaPipe, .litertlm: LiteRT-LM)."""


def bench_url(base_url: str, bundle_file: str, precision: str, prefill_tokens: int, decode_tokens: int,
              runs: int, warmup: int, runtime: str = "auto") -> str:
    query = urllib.parse.urlencode({
        "bench": 1, "bundle": bundle_file, "precision": precision, "prefill": prefill_tokens,
        "decode": decode_tokens, "runs": runs, "warmup": warmup, "runtime": runtime,
    })
    return f"{base_url.rstrip('/')}/?{query}"


def run_page_benchmark(
    base_url: str,
    bundle_file: str,
    precision: str,
    prefill_tokens: int,
    decode_tokens: int,
    runs: int,
    warmup: int,
    chromium_path: str | None = None,
    timeout_s: float = 900.0,
    runtime: str = "auto",
) -> dict[str, Any]:
    """Run the page's benchmark mode against a running web_demo server and return its result JSON.

    The dict has `ok`, `error` (the page's message when ok is false, e.g. F16 refused), `adapter` (vendor,
    architecture, shaderF16, limits...), `runtime` (which one ran it), `precision_used`, `load_ms`, `runs`
    (one dict per measured run, with its prompt and greedy text) and `summary` (medians). A page failure is
    returned, not raised; a timeout or browser crash raises PageError.
    """
    if precision not in {"auto", "f16", "f32"}:
        raise ValueError(f"precision must be auto, f16 or f32, not {precision!r}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    url = bench_url(base_url, bundle_file, precision, prefill_tokens, decode_tokens, runs, warmup, runtime)
    console: list[str] = []
    with launch_browser(chromium_path) as context:
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        page.goto(url, wait_until="domcontentloaded")
        try:
            page.wait_for_function("() => window.__benchResult !== undefined", timeout=timeout_s * 1000, polling=500)
        except Exception as exc:
            tail = "\n".join(console[-20:])
            raise PageError(f"the page published no benchmark result within {timeout_s:.0f} s ({exc}); console:\n{tail}") from exc
        result: dict[str, Any] = page.evaluate("() => window.__benchResult")
    return result


# --- Chat driving, shared by the screenshot script, the tests and the device lab --------------------------------

_SETTLED = "() => ['idle', 'ready', 'error', 'done'].includes(document.body.dataset.state)"

_WATCH_PARTIALS = """() => {
  window.__partials = [];
  const transcript = document.getElementById('transcript');
  new MutationObserver(() => {
    const m = transcript.querySelector('.msg.model:last-child');
    const text = m ? m.textContent : '';
    if (text && window.__partials[window.__partials.length - 1] !== text) window.__partials.push(text);
  }).observe(transcript, { subtree: true, childList: true, characterData: true });
}"""


def open_demo(context: Any, base_url: str, query: str = "", timeout_s: float = 60.0) -> Any:
    """Open the page and wait until adapter detection and the bundle list are done."""
    page = context.new_page()
    page.goto(f"{base_url.rstrip('/')}/{query}", wait_until="domcontentloaded")
    page.wait_for_function(_SETTLED, timeout=timeout_s * 1000)
    return page


def ask(
    page: Any,
    bundle_file: str,
    prompt: str,
    *,
    precision: str = "auto",
    runtime: str = "auto",
    max_tokens: int | None = None,
    top_k: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Pick `bundle_file`, the runtime and the settings in the UI, send `prompt`, wait for the answer.

    Returns {"state", "error", "text", "partials" (distinct streamed texts seen in the DOM), "stats" (the page's
    numbers: load_ms, ttft_ms, prefill_tok_s, decode_tok_s, tokens_in, tokens_out, precision_used, runtime, ...)}.
    """
    page.select_option("#bundle", bundle_file)
    page.check(f"input[name=precision][value={precision}]")
    page.check(f"input[name=runtime][value={runtime}]")
    for selector, value in (("#maxTokens", max_tokens), ("#topK", top_k), ("#temperature", temperature), ("#seed", seed)):
        if value is not None:
            page.fill(selector, str(value))
    page.evaluate(_WATCH_PARTIALS)
    page.evaluate("() => { window.__demo.stats = null; }")
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_function(
        "() => document.body.dataset.state === 'error' || (document.body.dataset.state === 'ready' && window.__demo.stats)",
        timeout=timeout_s * 1000, polling=250,
    )
    return page.evaluate("""() => ({
      state: document.body.dataset.state,
      error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
      text: (document.querySelector('#transcript .msg.model:last-child') || {}).textContent || '',
      partials: window.__partials || [],
      stats: window.__demo.stats,
    })""")
