"""Matrix logic on tiny models: parsing, naming, de-duplication across targets, skip/resume, memory refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk_build.architecture import GEMMA3_1B
from sdk_build.errors import BuildError, SpecError
from sdk_build.manifest import load_manifest
from sdk_build.matrix import DEFAULT_MATRIX, check_parallelism, load_matrix, run_matrix
from sdk_build.spec import Recipe, Target

TINY_MATRIX = """
checkpoint = "unused"
default_prefill_lengths = [32]

[targets.android-cpu]
variants = [
  { recipe = "dynamic_int8", ekv = 128 },
  { recipe = "dynamic_int4_block32", ekv = 128 },
  { recipe = "dynamic_int8", ekv = 256, prefill_lengths = [32, 128] },
]

[targets.android-gpu]
variants = [{ recipe = "dynamic_int8", ekv = 128 }]

[targets.web-gpu]
variants = [{ recipe = "dynamic_int8", ekv = 128, output_name = "tiny-int8-web" }]
"""


def test_published_matrix_parses_to_seed_001s_files() -> None:
    matrix = load_matrix(DEFAULT_MATRIX)
    cpu = matrix.targets[Target.ANDROID_CPU]
    assert len(cpu) == 8
    assert {(v.recipe, v.ekv) for v in cpu} >= {(Recipe.FP32, 1280), (Recipe.INT4_QAT, 2048), (Recipe.DYNAMIC_INT8, 4096)}
    assert all(v.prefill_lengths == (32, 128, 512, 1280) for v in cpu)
    plan = matrix.plan()
    # GPU and iOS reuse the CPU files: 8 CPU + 2 web files in all.
    assert len(plan) == 10
    shared = next(p for p in plan if p.spec.output_name == "gemma3-1b-it-int4")
    assert shared.targets == (Target.ANDROID_CPU, Target.ANDROID_GPU, Target.IOS)
    assert len({p.spec.export_key for p in plan}) == 3  # ekv 1280, 2048, 4096: three float exports


def test_bad_matrix_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[targets.android-tpu]\nvariants = []\n')
    with pytest.raises(SpecError, match="unknown target 'android-tpu'"):
        load_matrix(bad)
    bad.write_text('[targets.ios]\nvariants = [{ recipe = "dynamic_int8", ekv = 64, colour = "red" }]\n')
    with pytest.raises(SpecError, match="unknown keys"):
        load_matrix(bad)


def test_memory_refusal_names_a_jobs_value_that_fits() -> None:
    plan = load_matrix(DEFAULT_MATRIX).plan()
    check_parallelism(1, GEMMA3_1B, plan, available=1)  # one job is always allowed
    with pytest.raises(BuildError, match=r"--jobs 3 would run 3 float exports.*use --jobs 1"):
        check_parallelism(3, GEMMA3_1B, plan, available=24 * 2**30)
    check_parallelism(2, GEMMA3_1B, plan, available=64 * 2**30)


def test_tiny_matrix_builds_dedupes_and_resumes(tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text(TINY_MATRIX)
    matrix = load_matrix(path)
    out = tmp_path / "bundles"
    first = run_matrix(str(tiny_checkpoint_dir), matrix, out, cache_dir=gemma_edge_cache, allow_custom_shape=True,
                       jobs=2, available_bytes=64 * 2**30)
    assert not any(o.error for o in first)
    files = sorted(f for o in first for f in o.files)
    assert files == sorted([
        "Gemma3-Custom-IT_prefill-seq32_q8_ekv128.task",
        "Gemma3-Custom-IT_prefill-seq32_q4_block32_ekv128.task",
        "Gemma3-Custom-IT_multi-prefill-seq_q8_ekv256.task",
        "tiny-int8-web.task",
    ])
    entry = load_manifest(out).find("Gemma3-Custom-IT_prefill-seq32_q8_ekv128.task")
    assert entry is not None and entry.extra["targets"] == ["android-cpu", "android-gpu"]
    # Interrupted run: one bundle lost. The rerun rebuilds only that one.
    (out / "tiny-int8-web.task").unlink()
    second = run_matrix(str(tiny_checkpoint_dir), matrix, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    rebuilt = [f for o in second if not o.skipped for f in o.files]
    assert rebuilt == ["tiny-int8-web.task"]
