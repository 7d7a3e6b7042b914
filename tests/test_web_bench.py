"""Benchmark mode, the screenshot script and the real 270M answer, driven from Python as the device lab does.

Separate from test_web_page.py because `run_page_benchmark` opens its own Playwright session (one sync
Playwright per thread at a time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, live_server, make_serving_dir, positive_finite, requires_chromium

from web_demo.automation import ask, launch_browser, open_demo, run_page_benchmark

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def served(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_serving_dir(tiny_bundle_dir, tmp_path_factory.mktemp("web-bench") / "bundles")


@pytest.fixture(scope="module")
def server(served: dict[str, Any]) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": served["secret"].parent / "bundles"}) as live:
        yield live


def test_benchmark_mode_returns_json_and_posts_it(server: LiveServer, served: dict[str, Any]) -> None:
    result = run_page_benchmark(server.base_url, served["task"], "auto", prefill_tokens=32, decode_tokens=16,
                                runs=2, warmup=1, timeout_s=180)
    assert result["ok"], result["error"]
    assert result["schema"] == "gemma-edge.web-bench/1" and result["runtime"]["id"] == "mediapipe"
    assert result["precision_used"] == "f32" and result["force_f32"] is True and "no shader-f16" in result["precision_note"]
    assert result["adapter"]["architecture"] == "swiftshader" and result["adapter"]["shaderF16"] is False
    assert result["adapter"]["limits"]["maxStorageBufferBindingSize"] > 0
    assert result["bundle"]["sha256"] == next(e["sha256"] for e in served["entries"] if e["file"] == served["task"])
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        assert run["prefill_tokens"] == 32 and run["decode_tokens"] == 16
        for key in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "total_ms"):
            assert positive_finite(run[key]), (key, run)
    assert positive_finite(result["load_ms"]) and positive_finite(result["summary"]["decode_tok_s"])
    stored = server.get_json("/api/bench-results")["results"]
    assert any(r["result"]["started_utc"] == result["started_utc"] for r in stored)
    assert result["posted"]["id"] in {r["id"] for r in stored}


def test_benchmark_mode_runs_a_litertlm_through_litert_lm(server: LiveServer, served: dict[str, Any]) -> None:
    litertlm = next(e for e in served["entries"] if e["format"] == "litertlm")
    result = run_page_benchmark(server.base_url, litertlm["file"], "auto", prefill_tokens=32, decode_tokens=16,
                                runs=2, warmup=1, timeout_s=300)
    assert result["ok"], result["error"]
    assert result["runtime"]["id"] == "litert-lm" and result["runtime"]["npm"] == "@litert-lm/core"
    assert result["precision_used"] == "f32" and result["bundle"]["sha256"] == litertlm["sha256"]
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        # @litert-lm/core has no tokenizer call: the page sized the prompt from the engine's own count
        assert run["prefill_tokens"] == 32 and run["decode_tokens"] == 16
        assert run["engine"]["prefill_tokens"] == 33 and run["engine"]["decode_tokens"] == 16
        for key in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "total_ms"):
            assert positive_finite(run[key]), (key, run)
    assert positive_finite(result["load_ms"]) and positive_finite(result["summary"]["decode_tok_s"])


def test_benchmark_mode_reports_f16_refusal(server: LiveServer, served: dict[str, Any]) -> None:
    result = run_page_benchmark(server.base_url, served["task"], "f16", 16, 4, runs=1, warmup=0, timeout_s=60)
    assert result["ok"] is False and "F16 refused" in result["error"] and result["runs"] == []


def test_screenshot_after_an_answer(server: LiveServer, served: dict[str, Any], tmp_path: Path) -> None:
    from web_demo.screenshot import capture_screenshot

    out = tmp_path / "shot.png"
    answer = capture_screenshot(server.base_url, served["task"], out, max_tokens=48)
    assert answer["error"] is None and answer["text"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "runtime"), [("task", "mediapipe"), ("litertlm", "litert-lm")])
def test_real_270m_bundle_answers_in_the_page(fmt: str, runtime: str) -> None:
    """The real Gemma 3 270M in the page on SwiftShader (F32), in each runtime: minutes to the first token there.

    GEMMA_EDGE_SCREENSHOT_OUT=path also saves a screenshot of the page with the answer.
    """
    from sdk_build.artifacts.manifest import load_manifest

    directory = os.environ.get("GEMMA_EDGE_270M_BUNDLE_DIR")
    if not directory:
        pytest.skip(f"set GEMMA_EDGE_270M_BUNDLE_DIR to a folder with the 270M .{fmt} and its manifest.json")
    entries = [e for e in load_manifest(Path(directory)).bundles if e.format == fmt and "270m" in e.model.lower()]
    assert entries, f"no 270M .{fmt} in {directory}/manifest.json"
    entry = min(entries, key=lambda e: e.bytes)
    with live_server({"BUNDLES_DIR": Path(directory)}) as live, launch_browser() as context:
        page = open_demo(context, live.base_url)
        page.set_viewport_size({"width": 1000, "height": 900})
        answer = ask(page, entry.file, "The capital of France is", precision="auto", max_tokens=24, top_k=1,
                     temperature=0, timeout_s=1800)
        if os.environ.get("GEMMA_EDGE_SCREENSHOT_OUT"):  # e.g. docs/web_demo_screenshot.png
            page.screenshot(path=os.environ["GEMMA_EDGE_SCREENSHOT_OUT"], full_page=True)
    assert answer["error"] is None, answer["error"]
    assert answer["stats"]["precision_used"] == "f32" and answer["stats"]["runtime"] == runtime
    words = answer["text"].lower()
    assert any(w in words for w in ("paris", "france", "capital")), answer["text"]
