"""The page on LiteRT-LM's own web runtime (@litert-lm/core) beside MediaPipe's, in headless Chromium on SwiftShader.

Both runtimes load the tiny random-weight bundles from `tiny_bundle_dir` (`.task` in MediaPipe, `.litertlm` in
LiteRT-LM) and answer through the real WebGPU engines; a raw-text continuation of a pretrained tiny `.litertlm`
is compared with LiteRT-LM on this CPU, token stream for token stream. A bundle handed to the runtime that does
not read its format is refused with one line, whether the manifest says so or only the file's bytes do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, live_server, make_serving_dir, positive_finite, requires_chromium

from web_demo.automation import ask, launch_browser, open_demo

pytestmark = requires_chromium

PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def pretrained_litertlm(gemma_edge_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained tiny `.litertlm` (raw text: random weights give varied continuations, unlike chat turns)."""
    from sdk_build.pipeline import build
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint
    from sdk_build.spec import make_variant

    root = tmp_path_factory.mktemp("tiny-pt-litertlm")
    checkpoint = make_tiny_checkpoint(root / "checkpoint", instruction_tuned=False)
    outcome = build(str(checkpoint), make_variant("dynamic_int8", 256, [32, 128], formats=["litertlm"]), root / "out",
                    cache_dir=gemma_edge_cache, allow_custom_shape=True)
    return root / "out" / outcome.entries[0].file


@pytest.fixture(scope="module")
def served(tiny_bundle_dir: Path, pretrained_litertlm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny bundles, the pretrained `.litertlm`, and a `.task` listed as a `.litertlm` (wrong bytes for its name)."""
    folder = tmp_path_factory.mktemp("web-litertlm") / "bundles"
    site = make_serving_dir(tiny_bundle_dir, folder)
    manifest_path = folder / "manifest.json"
    data = json.loads(manifest_path.read_text())
    shutil.copy2(pretrained_litertlm, folder / pretrained_litertlm.name)
    from sdk_build.artifacts.manifest import load_manifest

    (pt_entry,) = [e.to_dict() for e in load_manifest(pretrained_litertlm.parent).bundles]
    task = next(e for e in data["bundles"] if e["file"] == site["task"])
    mislabeled = {**task, "file": "mislabeled.litertlm", "format": "litertlm", "target": "test-mislabeled"}
    shutil.copy2(folder / site["task"], folder / mislabeled["file"])
    mislabeled["sha256"] = hashlib.sha256((folder / mislabeled["file"]).read_bytes()).hexdigest()
    data["bundles"] += [pt_entry, mislabeled]
    manifest_path.write_text(json.dumps(data, indent=2))
    litertlm = next(e["file"] for e in site["entries"] if e["format"] == "litertlm")
    return {**site, "litertlm": litertlm, "pt_litertlm": pt_entry["file"], "mislabeled": mislabeled["file"],
            "folder": folder}


@pytest.fixture(scope="module")
def server(served: dict[str, Any]) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": served["folder"]}) as live:
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


def _check_answer(answer: dict[str, Any], runtime: str, max_tokens: int) -> dict[str, Any]:
    assert answer["error"] is None and answer["state"] == "ready", answer["error"]
    assert answer["text"], answer
    stats = answer["stats"]
    assert stats["runtime"] == runtime and stats["precision_used"] == "f32"
    for key in ("load_ms", "ttft_ms", "prefill_tok_s", "decode_tok_s", "tokens_in", "tokens_out"):
        assert positive_finite(stats[key]), (key, stats)
    assert stats["tokens_in"] + 1 + stats["tokens_out"] <= max_tokens
    partials = answer["partials"]
    assert all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:]))
    return stats


def test_both_runtimes_answer_in_one_page_from_local_files_only(page: Any, served: dict[str, Any], server: LiveServer) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.select_option("#bundle", served["litertlm"])
    assert page.inner_text("#runtime-note").startswith("LiteRT-LM (Auto: it reads .litertlm)")
    assert page.get_attribute("#bundle-info", "data-fit") == "fits"
    litert = _check_answer(ask(page, served["litertlm"], "Hello! Where is Paris?", max_tokens=48, top_k=1, temperature=0),
                           "litert-lm", 48)
    # The engine applied the bundle's chat template itself and counted it, BOS included (tokens_in excludes it).
    assert litert["engine"]["prefill_tokens"] == litert["tokens_in"] + 1 > 10
    assert litert["engine"]["decode_tokens"] == litert["tokens_out"] and litert["engine_kept_running"] is False
    assert "LiteRT-LM" in page.inner_text("#load-status") and page.inner_text("[data-stat=runtime]") == "LiteRT-LM"

    page.select_option("#bundle", served["task"])
    assert page.inner_text("#runtime-note").startswith("MediaPipe LLM Inference (Auto: it reads .task)")
    mediapipe = _check_answer(ask(page, served["task"], "Hello! Where is Paris?", max_tokens=48, top_k=1, temperature=0),
                              "mediapipe", 48)
    assert mediapipe["engine"] is None
    assert requests and all(url.startswith(server.base_url + "/") for url in requests), sorted(set(requests))
    assert any("/vendor/litert-lm/wasm/" in url for url in requests)
    assert any("/vendor/tasks-genai/wasm/" in url for url in requests)


def test_litertlm_continues_raw_text_as_litert_lm_does_on_the_cpu(page: Any, served: dict[str, Any]) -> None:
    import litert_lm

    answer = ask(page, served["pt_litertlm"], PROMPT, max_tokens=32, top_k=1, temperature=0)
    stats = _check_answer(answer, "litert-lm", 32)
    engine = litert_lm.Engine(str(served["folder"] / served["pt_litertlm"]),
                              backend=litert_lm.Backend.CPU(thread_count=2), max_num_tokens=256)
    try:
        conversation = engine.create_conversation(sampler_config=litert_lm.SamplerConfig(top_k=1))
        # Pretrained .litertlm bundles carry a pass-through template, so the text is not wrapped in chat turns.
        assert conversation.render_message_to_string({"role": "user", "content": PROMPT}) == PROMPT
        reply = conversation.send_message(PROMPT, max_output_tokens=stats["tokens_out"])
        cpu_text = "".join(part.text for part in reply.contents)
        conversation.close()
    finally:
        engine.close()
    assert answer["text"] == cpu_text


def test_a_runtime_refuses_the_other_format_in_one_line(page: Any, served: dict[str, Any]) -> None:
    for bundle, runtime, expected in (
        (served["litertlm"], "mediapipe", "is a .litertlm bundle (LiteRT-LM container), but MediaPipe LLM Inference loads .task bundles"),
        (served["task"], "litert-lm", "is a .task bundle (MediaPipe .task zip), but LiteRT-LM loads .litertlm bundles"),
    ):
        page.select_option("#bundle", bundle)
        page.check(f"input[name=runtime][value={runtime}]")
        assert expected in page.inner_text("#runtime-note")
        page.click("#load")
        page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
        error = page.inner_text("#error")
        assert error.startswith(f"Wrong bundle format: {bundle} ") and expected in error and "\n" not in error
        assert page.evaluate("window.__demo.model") is None


def test_a_file_whose_bytes_are_another_format_is_refused_before_the_engine(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["mislabeled"])
    assert page.inner_text("#runtime-note").startswith("LiteRT-LM")  # chosen from the manifest's format
    page.click("#load")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=60_000)
    error = page.inner_text("#error")
    assert error == (f"Wrong bundle format: {served['mislabeled']} is a .task bundle (MediaPipe .task zip), though its "
                     "manifest entry says .litertlm; LiteRT-LM loads .litertlm bundles. Rebuild the bundle or fix manifest.json.")


def test_stop_ends_a_litertlm_answer_in_the_engine(page: Any, served: dict[str, Any]) -> None:
    page.select_option("#bundle", served["litertlm"])
    page.fill("#maxTokens", "256")
    page.fill("#topK", "1")
    page.fill("#prompt", "Tell me a long story.")
    page.click("#send")
    page.wait_for_function(
        "(document.querySelector('#transcript .msg.model') || {}).textContent?.length > 2", timeout=120_000, polling=50
    )
    page.click("#stop")
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state) && window.__demo.stats", timeout=60_000)
    stats = page.evaluate("window.__demo.stats")
    assert stats["cancelled"] is True and stats["engine_kept_running"] is False
    # LiteRT-LM honours cancel: the engine stopped within a few tokens, far from maxTokens.
    assert stats["engine"]["prefill_tokens"] + stats["engine"]["decode_tokens"] < 200
    assert page.inner_text("#transcript .msg.model").endswith(" [stopped]")
    assert page.inner_text("#load-status") == "Stopped."


def test_litert_lm_web_runtime_has_no_call_to_load_a_lora_adapter(page: Any) -> None:
    methods = page.evaluate("""async () => {
      const m = await import('/vendor/litert-lm/dist/index.js');
      const names = (cls) => Object.getOwnPropertyNames(cls.prototype).concat(Object.getOwnPropertyNames(cls));
      return { Engine: names(m.Engine), Conversation: names(m.Conversation), Session: names(m.Session) };
    }""")
    assert "createConversation" in methods["Engine"] and "sendMessageStreaming" in methods["Conversation"]
    assert not [f"{cls}.{name}" for cls, names in methods.items() for name in names if "lora" in name.lower()]
