"""The catalog's memory estimate against what LiteRT-LM really holds (slow: real 270M and 1B-shaped builds).

For the real Gemma 3 270M and the 1B shape (random weights: sizes and memory do not depend on weight values), at ekv
1280 and 4096, with window-sized and with full-length local KV caches, each bundle runs in a fresh process
(`bench.litert_lm_memory`: a 1024-token prompt, 128 decode steps, a first launch that packs XNNPACK's weight cache
and a later one that maps it). The runtime's share of the peak RSS (peak minus the process's RSS before the engine
existed) must lie within `MARGIN` of the catalog's `backends.cpu.estimated_runtime_bytes`, and window caches must
save (or cost: the ring's mask and write plan) about what the estimate says. Measured (`python -m bench.kv_window`,
270M 2026-12-01, 1B 2026-12-02): estimate / first-launch share 0.99-1.03 over all sixteen bundles.

Builds go through the real pipeline into a temporary folder; float exports are cached in the session cache
(`GEMMA_EDGE_TEST_CACHE=~/.cache/gemma-edge` reuses the ones `python -m bench.kv_window` made).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bench.litert_lm_memory import measure
from sdk_build.artifacts.catalog import catalog_entry
from sdk_build.convert.export import ExportOptions
from sdk_build.pipeline import build
from sdk_build.sources import resolve_checkpoint
from sdk_build.spec import make_variant

pytestmark = pytest.mark.slow

MARGIN = 0.06
"""|estimate - held| / held at most this: the estimate is a sum of parts (two of them fitted), the measurement one
process on one host; twice the largest error measured."""
SAVING_MARGIN = 0.03
"""|(full - window) measured - (full - window) estimated| at most this share of the full-cache bundle's figure."""
PROMPT_TOKENS, DECODE_TOKENS = 1024, 128


def _held(bundle: Path, ekv: int, tokenizer: Path) -> int:
    """The larger runtime share of a first and a later launch sharing one XNNPACK cache folder."""
    import multiprocessing

    with tempfile.TemporaryDirectory() as cache, multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        runs = [pool.apply(measure, (bundle, ekv, tokenizer, Path(cache), PROMPT_TOKENS, DECODE_TOKENS, 2))
                for _ in range(2)]
    assert all(r["decode_tokens"] > 0 for r in runs)
    return max(r["held_bytes"] for r in runs)


@pytest.mark.parametrize("ref", ["embedded:gemma3-270m", "random:gemma3-1b-it"])
@pytest.mark.parametrize("ekv", [1280, 4096])
def test_estimate_matches_what_litert_lm_holds(ref: str, ekv: int, gemma_edge_cache: Path, tmp_path: Path) -> None:
    tokenizer = resolve_checkpoint(ref, gemma_edge_cache).tokenizer_path
    variant = make_variant("dynamic_int8", ekv, None, formats=["task", "litertlm"])
    held: dict[tuple[bool, str], int] = {}
    estimated: dict[tuple[bool, str], int] = {}
    for window in (True, False):
        folder = tmp_path / ("window" if window else "full")
        outcome = build(ref, variant, folder, cache_dir=gemma_edge_cache,
                        export_options=ExportOptions(window_kv_cache=window))
        for entry in outcome.entries:
            memory = catalog_entry(entry, entry.file)["memory"]
            assert memory["kv_cache"]["window_sized_local_layers"] is window
            estimated[(window, entry.format)] = memory["backends"]["cpu"]["estimated_runtime_bytes"]
            held[(window, entry.format)] = _held(folder / entry.file, ekv, tokenizer)
    for key, measured in held.items():
        error = abs(estimated[key] - measured) / measured
        assert error <= MARGIN, f"{ref} ekv {ekv} {key}: estimate {estimated[key]:,} vs held {measured:,} ({error:.1%})"
    for fmt in ("task", "litertlm"):  # what window caches save (or cost: the ring's plan), as the estimate says
        saved = held[(False, fmt)] - held[(True, fmt)]
        expected = estimated[(False, fmt)] - estimated[(True, fmt)]
        assert abs(saved - expected) <= SAVING_MARGIN * held[(False, fmt)], (fmt, saved, expected)
