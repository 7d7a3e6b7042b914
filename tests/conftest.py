"""Shared fixtures: tiny Gemma-3-shaped bundles built through the real pipeline (seconds, no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GEMMA_EDGE_QUIET", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_EKV = 256
TINY_PREFILL = (32, 128)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long builds/benchmarks; run with `nox -s slow_tests` (not in CI)")


@pytest.fixture(scope="session")
def gemma_edge_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder for resolved checkpoints and float exports, shared by the whole test session."""
    return Path(os.environ.get("GEMMA_EDGE_TEST_CACHE") or tmp_path_factory.mktemp("gemma-edge-cache"))


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"))


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path, gemma_edge_cache: Path) -> Path:
    """A folder with a tiny instruction-tuned int8 `.task` and `.litertlm` (ekv 256, prefill 32/128) and manifest.json.

    Full-length KV caches (the default at this size), so browsers' GPU runtimes, which have never run the ring,
    load it too; `tiny_window_bundle_dir` is the same with window-sized local caches.
    """
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    out = tmp_path_factory.mktemp("tiny-bundles")
    variant = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["task", "litertlm"])
    build(str(tiny_checkpoint_dir), variant, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    return out


@pytest.fixture(scope="session")
def tiny_window_bundle_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path, gemma_edge_cache: Path
) -> Path:
    """`tiny_bundle_dir` built with window-sized local KV caches (ring buffers in the graph: `sdk_build.convert.window_cache`),
    so verify runs the ring in LiteRT-LM on the CPU; at this size the default would be full caches."""
    from sdk_build.convert.export import ExportOptions
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    out = tmp_path_factory.mktemp("tiny-window-bundles")
    variant = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["task", "litertlm"])
    build(str(tiny_checkpoint_dir), variant, out, cache_dir=gemma_edge_cache, allow_custom_shape=True,
          export_options=ExportOptions(window_kv_cache=True))
    return out


def import_mlx_convert():
    """`mlx_lm.convert`, imported without its side effect on this process: mlx_lm.utils sets RLIMIT_NOFILE to
    (2048, 4096) at import, which would leave every later test (the server's connection tests need thousands of
    descriptors) under a hard limit a non-root process cannot raise again."""
    import resource

    real = resource.setrlimit
    resource.setrlimit = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        from mlx_lm import convert
    finally:
        resource.setrlimit = real
    return convert
