"""LoRA on the web demo: adapter files served like bundles, and the page in headless Chromium (WebGPU on SwiftShader).

What MediaPipe's web runtime (tasks-genai 0.10.29) does with a runtime adapter is checked, not assumed: it refuses
LoRA for converted `.task` models with its own message, which the page must show while still answering without the
adapter. Answering with an adapter in the browser goes through the fused bundle, compared here with the base bundle.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, live_server, requires_chromium

from sdk_build.artifacts.manifest import AdapterEntry, load_manifest, sha256_file, update_manifest_adapter
from sdk_build.compose import build
from sdk_build.lora.adapter import load_adapter
from sdk_build.lora.build import adapter_file_name
from sdk_build.lora.litert_lora import write_adapter_file
from sdk_build.lora.spec import make_lora_spec
from sdk_build.lora.synthetic import write_random_adapter
from sdk_build.spec import make_variant

MEDIAPIPE_REFUSAL = "LoRA is not supported for converted LLM models (.task format) yet"


def _fetch(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_listed_adapter_files_are_served_like_bundles(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    from sdk_build.sources import resolve_checkpoint

    folder = tmp_path / "bundles"
    shutil.copytree(tiny_bundle_dir, folder)
    task = next(e for e in load_manifest(folder).bundles if e.format == "task")
    base = resolve_checkpoint(task.checkpoint["ref"], allow_custom_shape=True)
    adapter = load_adapter(write_random_adapter(tmp_path / "style", base.shape, rank=8), base.shape)
    path = write_adapter_file(adapter, base.shape, folder / adapter_file_name(base, adapter, 16), rank=16)
    update_manifest_adapter(
        folder,
        AdapterEntry(
            file=path.name,
            bytes=path.stat().st_size,
            sha256=sha256_file(path),
            rank=16,
            lora=adapter.describe(),
            base={"ref": base.ref, "fingerprint": base.fingerprint},
            bundles=[task.file],
            created_utc="2026-11-23T00:00:00Z",
        ),
    )
    (folder / "unlisted_lora-r16.tflite").write_bytes(path.read_bytes())

    with live_server({"BUNDLES_DIR": folder}) as server:
        listed = {b["file"]: b for b in server.get_json("/api/bundles")["bundles"]}
        (served,) = listed[task.file]["adapters"]
        assert served["file"] == path.name and served["rank"] == 16 and served["lora"]["rank"] == 8
        assert served["path"] == f"/bundles/{path.name}"
        others = [b for name, b in listed.items() if name != task.file]
        assert others and all(b["adapters"] == [] for b in others)
        status, headers, body = _fetch(server.base_url + served["path"])
        assert status == 200 and body == path.read_bytes()
        assert headers["X-Content-SHA256"] == hashlib.sha256(body).hexdigest() == served["sha256"]
        assert _fetch(server.base_url + "/bundles/unlisted_lora-r16.tflite")[0] == 404
        path.write_bytes(path.read_bytes() + b"changed")
        status, _, body = _fetch(server.base_url + served["path"])
        assert status == 409 and b"rebuild it" in body


# --- The page, with real runtime and fused bundles of the tiny model (one runtime export: slow) ------------------


@pytest.fixture(scope="module")
def lora_site(gemma_edge_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Pretrained (raw text) tiny bundles: the random tiny model answers a chat-templated prompt with newlines
    whatever the adapter, while raw-text continuations show the adapter's effect."""
    from sdk_build.sources import resolve_checkpoint
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("web-lora")
    checkpoint = str(make_tiny_checkpoint(root / "tiny-pt", instruction_tuned=False))
    shape = resolve_checkpoint(checkpoint, allow_custom_shape=True).shape
    adapter = write_random_adapter(root / "style", shape, rank=8, alpha=16, strength=1.0, seed=4)
    folder = root / "bundles"
    variant = make_variant("dynamic_int8", 128, [32])
    common = {"cache_dir": gemma_edge_cache, "allow_custom_shape": True}
    base = build(checkpoint, variant, folder, **common).entries[0].file
    fused = build(checkpoint, variant, folder, lora=make_lora_spec(adapter), **common).entries[0].file
    runtime = build(checkpoint, variant, folder, lora=make_lora_spec(adapter, "runtime"), **common)
    return {
        "folder": folder,
        "base": base,
        "fused": fused,
        "runtime": runtime.entries[0].file,
        "adapter_file": runtime.adapter_file.name,
    }


@pytest.fixture(scope="module")
def page_server(lora_site: dict) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": lora_site["folder"]}) as live:
        yield live


@pytest.fixture(scope="module")
def page(page_server: LiveServer) -> Iterator[Any]:
    from web_demo.automation import launch_browser, open_demo

    with launch_browser() as context:
        page = open_demo(context, page_server.base_url)
        yield page
        page.close()


@pytest.mark.slow
@requires_chromium
def test_runtime_adapter_is_listed_loaded_and_mediapipes_refusal_shown(page: Any, lora_site: dict) -> None:
    from web_demo.automation import ask

    page.select_option("#bundle", lora_site["runtime"])
    assert page.is_visible("#lora-panel")
    assert "takes a LoRA adapter at run time (rank 16)" in page.inner_text("#lora-info")
    options = page.eval_on_selector_all("#lora-select option", "els => els.map(e => e.value)")
    assert options == [lora_site["adapter_file"]]
    page.check("input[name=precision][value=f32]")
    page.click("#lora-load")
    page.wait_for_function("window.__demo.lora.error || window.__demo.lora.model", timeout=180_000, polling=250)
    lora = page.evaluate("({error: window.__demo.lora.error, file: window.__demo.lora.file})")
    # Recorded on this machine: MediaPipe's web API refuses adapters for converted .task bundles, in JavaScript,
    # before looking at the model. The page must pass its words on and keep working without the adapter.
    assert MEDIAPIPE_REFUSAL in lora["error"] and lora["file"] == lora_site["adapter_file"]
    status = page.inner_text("#lora-status")
    assert MEDIAPIPE_REFUSAL in status and "--lora-mode fused" in status
    assert page.is_disabled("#lora-use") and not page.is_checked("#lora-use")
    answer = ask(
        page, lora_site["runtime"], "The quick brown fox", precision="f32", max_tokens=48, top_k=1, temperature=0
    )
    assert answer["error"] is None and answer["text"] and answer["stats"]["lora_adapter"] is None


@pytest.mark.slow
@requires_chromium
def test_fused_bundle_answers_with_the_adapter_and_base_without(page: Any, lora_site: dict) -> None:
    from web_demo.automation import ask

    page.select_option("#bundle", lora_site["fused"])
    assert "fused into this bundle's weights (r=8, alpha 16" in page.inner_text("#lora-info")
    assert page.is_disabled("#lora-load"), "a fused bundle needs no adapter file"
    settings = {"precision": "f32", "max_tokens": 48, "top_k": 1, "temperature": 0}
    fused = ask(page, lora_site["fused"], "The quick brown fox", **settings)
    page.select_option("#bundle", lora_site["base"])
    assert not page.is_visible("#lora-panel")
    base = ask(page, lora_site["base"], "The quick brown fox", **settings)
    assert fused["error"] is None and base["error"] is None
    assert fused["text"] and base["text"] and fused["text"] != base["text"]
