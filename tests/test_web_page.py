"""The demo page in a real headless Chromium (WebGPU on SwiftShader) against the real server on loopback.

The tiny random-weight `.task` from `tiny_bundle_dir` runs through MediaPipe's real WebGPU executor, so these
check the page end to end: streaming, stats, precision choice, benchmark mode and its POST, error states.
Answers are noise (random weights). LiteRT-LM's runtime (`.litertlm`) is in test_web_litertlm.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, live_server, make_serving_dir, positive_finite, requires_chromium

from web_demo.automation import ask, launch_browser, open_demo

pytestmark = requires_chromium

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_serving_dir(tiny_bundle_dir, tmp_path_factory.mktemp("web-page") / "bundles")


@pytest.fixture(scope="module")
def server(served: dict[str, Any]) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": served["secret"].parent / "bundles"}) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as context:
        yield context


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    page = open_demo(browser, server.base_url)
    yield page
    page.close()


def text(page: Any, selector: str) -> str:
    return page.inner_text(selector)


def test_adapter_is_shown_and_auto_picks_f32_on_swiftshader(page: Any, served: dict[str, Any]) -> None:
    assert page.evaluate("document.body.dataset.state") == "idle"
    assert page.inner_text("[data-gpu=Architecture]") == "swiftshader"
    assert page.inner_text("[data-gpu=shader-f16]") == "no"
    assert int(page.inner_text("[data-gpu=maxStorageBufferBindingSize]").split()[0].replace(",", "")) > 0
    assert int(page.inner_text("[data-gpu=maxBufferSize]").split()[0].replace(",", "")) > 0
    note = text(page, "#precision-note")
    assert "Auto picked F32" in note and "no shader-f16" in note
    options = page.eval_on_selector_all("#bundle option", "els => els.map(e => e.textContent)")
    task_option = next(o for o in options if o.startswith(served["task"]))
    assert "KiB" in task_option or "MiB" in task_option
    assert "fits" in task_option
    assert page.get_attribute("#bundle-info", "data-fit") == "fits" or page.select_option("#bundle", served["task"])


def test_f16_is_refused_on_an_adapter_without_shader_f16(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["task"])
    page.check("input[name=precision][value=f16]")
    assert "F16 refused" in text(page, "#precision-note")
    page.click("#load")
    page.wait_for_function("document.body.dataset.state === 'error'")
    error = text(page, "#error")
    assert "F16 refused" in error and "shader-f16" in error and "F32" in error
    assert page.evaluate("window.__demo.model") is None


def test_chat_streams_and_fills_plausible_stats(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["task"])
    page.click("#load")
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    assert page.evaluate("document.body.dataset.state") == "ready", text(page, "#error")
    assert "F32" in text(page, "#load-status")
    answer = ask(page, served["task"], "Hello! Where is Paris?", max_tokens=64, top_k=1, temperature=0)
    assert answer["error"] is None and answer["state"] == "ready"
    partials = answer["partials"]
    assert len(partials) > 1, partials
    assert all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:]))  # it grows as it streams
    stats = answer["stats"]
    for key in ("load_ms", "ttft_ms", "prefill_tok_s", "decode_tok_s", "tokens_in", "tokens_out"):
        assert positive_finite(stats[key]), (key, stats)
    assert stats["precision_used"] == "f32"
    assert stats["tokens_in"] + 1 + stats["tokens_out"] <= 64
    assert stats["tokens_out"] > 1 and stats["updates"] > 1
    # The chat template was applied: the user turn markup counts as prompt tokens.
    assert stats["runtime"] == "mediapipe"
    plain = page.evaluate("window.__demo.model.countTokens('Hello! Where is Paris?')")
    assert stats["tokens_in"] > plain
    shown = {el: text(page, f"[data-stat={el}]") for el in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "precision_used")}
    assert shown["ttft_ms"].endswith("ms") and shown["decode_tok_s"].endswith("tok/s") and shown["precision_used"].startswith("F32")


def test_stop_cancels_a_running_answer(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["task"])
    page.fill("#maxTokens", "256")
    page.fill("#topK", "1")
    page.fill("#prompt", "Tell me a long story.")
    page.click("#send")
    page.wait_for_function(
        "(document.querySelector('#transcript .msg.model') || {}).textContent?.length > 0", timeout=120_000, polling=50
    )
    page.click("#stop")
    shown_at_stop = page.evaluate("document.querySelector('#transcript .msg.model').textContent")
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state) && window.__demo.stats", timeout=60_000)
    stats = page.evaluate("window.__demo.stats")
    assert stats["cancelled"] is True
    final = text(page, "#transcript .msg.model")
    assert final.endswith(" [stopped]")
    # Nothing streamed after Stop (the engine may finish in the background: MediaPipe ignores cancel for .task).
    assert final.removesuffix(" [stopped]").startswith(shown_at_stop.rstrip()[:20])
    assert stats["tokens_in"] + 1 + stats["tokens_out"] < 256
    assert "Stopped" in text(page, "#load-status")
    assert not page.is_disabled("#send")


def test_pretrained_bundles_get_raw_text(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["pt_task"])
    assert "Raw text" in text(page, "#template-note")
    prompts = page.evaluate(
        """async ([it, pt]) => {
          const m = await import('/static/js/prompt.js');
          const bundles = window.__demo.bundles;
          const get = (f) => bundles.find((b) => b.file === f);
          return [m.formatPrompt(get(it), 'Hi'), m.formatPrompt(get(pt), 'Hi'),
                  m.formatPrompt(get(it), 'Again', [{role: 'user', text: 'Hi'}, {role: 'model', text: 'Hello'}])];
        }""",
        [served["task"], served["pt_task"]],
    )
    assert prompts[0] == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert prompts[1] == "Hi"
    assert prompts[2] == ("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                          "<start_of_turn>user\nAgain<end_of_turn>\n<start_of_turn>model\n")


def test_download_failure_is_reported(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["missing"])
    page.check("input[name=precision][value=f32]")
    page.click("#load")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=60_000)
    error = text(page, "#error")
    assert f"Download of {served['missing']} failed: HTTP 409" in error and "missing on disk" in error


def test_engine_error_shows_the_engines_message(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["broken"])
    page.click("#load")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=60_000)
    error = text(page, "#error")
    assert f"The engine could not load {served['broken']}:" in error
    assert "TF_LITE_PREFILL_DECODE" in error  # MediaPipe's own message, passed through


def test_no_webgpu_is_reported(browser: Any, server: LiveServer) -> None:
    page = browser.new_page()
    page.add_init_script("Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });")
    page.goto(server.base_url + "/")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "No WebGPU" in text(page, "#error")
    assert page.is_disabled("#load")
    page.close()


def test_too_large_bundle_is_refused(browser: Any, server: LiveServer, served: dict[str, Any]) -> None:
    # Simulate a small adapter: report tiny buffer limits (the real SwiftShader ones are 1 GiB).
    page = browser.new_page()
    page.add_init_script("""
      const real = Object.getOwnPropertyDescriptor(GPUAdapter.prototype, 'limits').get;
      Object.defineProperty(GPUAdapter.prototype, 'limits', { get() {
        const limits = real.call(this);
        return new Proxy(limits, { get: (t, k) => (k === 'maxBufferSize' || k === 'maxStorageBufferBindingSize') ? 65536 : t[k] });
      } });
    """)
    page.goto(server.base_url + "/")
    page.wait_for_function("document.body.dataset.state === 'idle'", timeout=30_000)
    page.select_option("#bundle", served["task"])
    assert page.get_attribute("#bundle-info", "data-fit") == "too-large"
    page.click("#load")
    page.wait_for_function("document.body.dataset.state === 'error'")
    assert "Model too large for this adapter" in text(page, "#error")
    page.close()
