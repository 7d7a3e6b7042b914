"""Time what a first-time user of the demo page waits for: the page, the model, the first answer token.

Driven through web_demo/automation.py (Playwright + a real Chromium), the way a user does it: open the page,
keep the defaults it offers (its first `.task` bundle, Auto precision, maxTokens = the bundle's KV cache), type a
prompt and press Send. Send loads the model itself (download over HTTP + engine start), so "model loaded" is the
moment the page switches to generating, and "first token" the moment the answer's text appears in the DOM.
Times are taken here, on the driver's clock, polling every 100 ms; the page's own load time is returned beside.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from web_demo.automation import PageError, launch_browser, open_demo

POLL_MS = 100
_MODEL_LOADED = "() => ['generating', 'error'].includes(document.body.dataset.state)"
_FIRST_TOKEN = """() => {
  if (document.body.dataset.state === 'error') return true;
  const m = document.querySelector('#transcript .msg.model:last-child');
  return Boolean(m && m.textContent.length > 0);
}"""
_ERROR_TEXT = "() => document.getElementById('error').hidden ? null : document.getElementById('error').textContent"


@dataclasses.dataclass(frozen=True)
class FirstAnswer:
    """time.monotonic() instants on the driver's clock, and what the page showed."""

    browser_started_at: float  # before Chromium is launched
    page_loaded_at: float  # the page has detected WebGPU and listed the bundles
    sent_at: float  # Send pressed (the page then downloads the bundle and starts the engine)
    model_loaded_at: float  # the page switched to generating
    first_token_at: float  # the first answer text is in the page
    bundle: str
    precision: str | None
    page_load_ms: float | None  # the page's own measure of the model load
    first_text: str
    adapter: dict[str, Any]


def time_first_answer(
    base_url: str,
    prompt: str,
    *,
    precision: str = "auto",
    max_tokens: int | None = None,
    timeout_s: float = 1200.0,
    chromium_path: str | None = None,
) -> FirstAnswer:
    """Open the demo at `base_url`, send `prompt` with the page's defaults, return when the first token shows.

    Raises PageError with the page's error text when the page reports one (download or engine failure).
    """
    started = time.monotonic()
    with launch_browser(chromium_path) as context:
        page = open_demo(context, base_url, timeout_s=120)
        page_loaded = time.monotonic()
        error = page.evaluate(_ERROR_TEXT)
        if error:
            raise PageError(f"the page reported an error before anything was sent: {error}")
        bundle = str(page.input_value("#bundle"))
        if not bundle:
            raise PageError("the page lists no bundle to load")
        page.check(f"input[name=precision][value={precision}]")
        if max_tokens is not None:
            page.fill("#maxTokens", str(max_tokens))
        page.fill("#prompt", prompt)
        page.click("#send")
        sent = time.monotonic()
        page.wait_for_function(_MODEL_LOADED, timeout=timeout_s * 1000, polling=POLL_MS)
        model_loaded = time.monotonic()
        page.wait_for_function(_FIRST_TOKEN, timeout=timeout_s * 1000, polling=POLL_MS)
        first_token = time.monotonic()
        error = page.evaluate(_ERROR_TEXT)
        if error:
            raise PageError(f"the page failed while loading or answering: {error}")
        info: dict[str, Any] = page.evaluate(
            """() => ({
              text: (document.querySelector('#transcript .msg.model:last-child') || {}).textContent || '',
              loadMs: window.__demo.loadMs ?? null,
              precision: window.__demo.precision ? window.__demo.precision.used : null,
              adapter: window.__demo.gpu || {},
            })"""
        )
    return FirstAnswer(
        browser_started_at=started,
        page_loaded_at=page_loaded,
        sent_at=sent,
        model_loaded_at=model_loaded,
        first_token_at=first_token,
        bundle=bundle,
        precision=info.get("precision"),
        page_load_ms=info.get("loadMs"),
        first_text=str(info.get("text", "")),
        adapter=_plain(info.get("adapter", {})),
    )


def _plain(adapter: Any) -> dict[str, Any]:
    """The adapter facts worth keeping in a results file (strings and numbers only)."""
    if not isinstance(adapter, dict):
        return {}
    return {k: v for k, v in adapter.items() if isinstance(v, str | int | float | bool)}
