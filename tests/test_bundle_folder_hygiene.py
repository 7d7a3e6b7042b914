"""A bundle folder is what users copy to a CDN: running its bundles must not add LiteRT-LM's caches to it.

LiteRT-LM writes an XNNPACK weight cache (and GPU program/weight caches) beside the model path it is given unless
told otherwise; after `nox -s demo` that put a cache of the bundle's size beside every bundle in `bundles/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device_tests.bundles import select_bundles
from device_tests.runners.host import HostRunOptions, run_host_benchmark
from sdk_build.verify import verify_bundle


@pytest.fixture
def published_folder(tiny_bundle_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "bundles"
    shutil.copytree(tiny_bundle_dir, folder, ignore=shutil.ignore_patterns("*cache*", ".*"))
    return folder


def test_verify_and_the_lab_leave_nothing_beside_the_bundles(published_folder, gemma_edge_cache, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("GEMMA_EDGE_CACHE", str(tmp_path / "engine-cache"))
    before = sorted(p.name for p in published_folder.iterdir())
    task = next(published_folder.glob("*.task"))
    report = verify_bundle(task, cache_dir=gemma_edge_cache, new_tokens=4, prompts=("The capital of France is",))
    assert report.bundle == task.name
    (bundle,) = select_bundles(published_folder, ["format=litertlm"])
    result = run_host_benchmark(bundle, HostRunOptions(prefill_tokens=16, decode_tokens=8, runs=1, warmup=0))
    assert result.status == "ok", result.message
    assert sorted(p.name for p in published_folder.iterdir()) == before
    written = [p.name for p in (tmp_path / "engine-cache").rglob("*") if p.is_file()]
    assert any(name.endswith(".xnnpack_cache") for name in written), written  # the cache went where it belongs
