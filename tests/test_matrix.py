"""Matrix logic on tiny models: parsing, naming, de-duplication across targets, skip/resume, memory refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdk_build.architecture import GEMMA3_1B
from sdk_build.artifacts.manifest import load_manifest
from sdk_build.artifacts.naming import bundle_filename
from sdk_build.errors import BuildError, SpecError
from sdk_build.executors import run_matrix
from sdk_build.matrix import DEFAULT_MATRIX, check_parallelism, estimated_export_bytes, load_matrix
from sdk_build.sources.checkpoint import Checkpoint
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

[targets.ios]
variants = [{ recipe = "dynamic_int8", ekv = 128 }]

[targets.web-gpu]
variants = [{ recipe = "dynamic_int8", ekv = 128, output_name = "tiny-int8-web" }]
"""


def test_published_matrix_parses_to_googles_files() -> None:
    matrix = load_matrix(DEFAULT_MATRIX)
    cpu = matrix.targets[Target.ANDROID_CPU]
    assert len(cpu) == 8
    assert {(v.recipe, v.ekv) for v in cpu} >= {(Recipe.FP32, 1280), (Recipe.INT4_QAT, 2048), (Recipe.DYNAMIC_INT8, 4096)}
    assert all(v.prefill_lengths == (32, 128, 512, 1280) for v in cpu)
    plan = matrix.plan()
    # iOS reuses the CPU files; the GPU targets have their own (the GPU layout): 8 CPU + 3 Android GPU + 2 web.
    assert len(plan) == 13
    shared = next(p for p in plan if p.spec.output_name == "gemma3-1b-it-int4")
    assert shared.targets == (Target.ANDROID_CPU, Target.IOS)
    # ekv 1280, 2048, 4096 in each layout: six float exports (web-gpu shares Android GPU's ekv 1280 one)
    assert len({p.spec.export_key for p in plan}) == 6
    gpu = [p for p in plan if Target.ANDROID_GPU in p.targets or Target.WEB_GPU in p.targets]
    assert all(p.spec.buffer_limit == 128 * 2**20 and not set(p.targets) & {Target.ANDROID_CPU, Target.IOS}
               for p in gpu)


def test_every_published_file_has_its_published_size() -> None:
    """The default matrix names Google's size for each of its 13 files (the Android GPU ones: Google's CPU files, which
    it ships for the GPU), so the build prints size vs published."""
    matrix = load_matrix(DEFAULT_MATRIX)
    checkpoint = Checkpoint(ref="random:gemma3-1b-it", directory=Path("."), model="gemma3-1b", shape=GEMMA3_1B,
                            instruction_tuned=True, qat=False, fingerprint="x")
    names = {bundle_filename(checkpoint, p.spec, fmt) for p in matrix.plan() for fmt in p.spec.formats}
    assert names == set(matrix.published_mib)
    assert matrix.published_mib["Gemma3-1B-IT_multi-prefill-seq_q8_ekv1280.task"] == 1005
    assert matrix.size_difference("gemma3-1b-it-int4.task", 529 * 2**20) == 0
    assert matrix.size_difference("gemma3-1b-it-int4.task", int(529 * 1.02 * 2**20)) == pytest.approx(0.02, abs=1e-6)
    assert matrix.size_difference("not-published.task", 1) is None


def test_bad_matrix_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[targets.android-tpu]\nvariants = []\n')
    with pytest.raises(SpecError, match="unknown target 'android-tpu'"):
        load_matrix(bad)
    bad.write_text('[targets.ios]\nvariants = [{ recipe = "dynamic_int8", ekv = 64, colour = "red" }]\n')
    with pytest.raises(SpecError, match="unknown keys"):
        load_matrix(bad)
    bad.write_text('[published_mib]\n"a.task" = "big"\n[targets.ios]\nvariants = []\n')
    with pytest.raises(SpecError, match=r"\[published_mib\] must map output file names to sizes in MiB"):
        load_matrix(bad)


def test_memory_refusal_names_a_jobs_value_that_fits() -> None:
    plan = load_matrix(DEFAULT_MATRIX).plan()
    check_parallelism(1, GEMMA3_1B, plan, available=1)  # one job is always allowed
    # 1B, lightweight conversion: about 6.4 GB per export (measured 5.8 GB).
    with pytest.raises(BuildError, match=r"--jobs 3 would run 3 float exports.*use --jobs 2"):
        check_parallelism(3, GEMMA3_1B, plan, available=14 * 2**30)
    check_parallelism(2, GEMMA3_1B, plan, available=14 * 2**30)
    # litert-torch's default conversion needed 3.7x the fp32 weights: one 1B export at a time on a 24 GiB machine.
    assert estimated_export_bytes(GEMMA3_1B, 4, lightweight_conversion=False) > 14e9
    assert estimated_export_bytes(GEMMA3_1B, 4) < 7e9


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
        "Gemma3-Custom-IT_prefill-seq32_q8_ekv128_gpu.task",
        "tiny-int8-web.task",
    ])
    entry = load_manifest(out).find("Gemma3-Custom-IT_prefill-seq32_q8_ekv128.task")
    assert entry is not None and entry.extra["targets"] == ["android-cpu", "ios"]
    gpu_entry = load_manifest(out).find("Gemma3-Custom-IT_prefill-seq32_q8_ekv128_gpu.task")
    assert gpu_entry.extra["targets"] == ["android-gpu"] and gpu_entry.extra["gpu_buffer_limit"] == 128 * 2**20
    assert "residual_scale" in gpu_entry.extra and "residual_scale" not in entry.extra
    # Interrupted run: one bundle lost. The rerun rebuilds only that one.
    (out / "tiny-int8-web.task").unlink()
    second = run_matrix(str(tiny_checkpoint_dir), matrix, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    rebuilt = [f for o in second if not o.skipped for f in o.files]
    assert rebuilt == ["tiny-int8-web.task"]


def test_matrix_command_reports_sizes_against_published_ones(
    tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from sdk_build.cli import main

    path = tmp_path / "matrix.toml"
    path.write_text('[published_mib]\n"tiny-int8-web.task" = 0.01\n\n[targets.web-gpu]\n'
                    'variants = [{ recipe = "dynamic_int8", ekv = 128, prefill_lengths = [32], output_name = "tiny-int8-web" }]\n')
    table = tmp_path / "matrix.json"
    code = main(["matrix", "--matrix", str(path), "--checkpoint", str(tiny_checkpoint_dir), "--output",
                 str(tmp_path / "out"), "--cache-dir", str(gemma_edge_cache), "--allow-custom-shape", "--report", str(table)])
    assert code == 0
    (row,) = json.loads(table.read_text())
    assert row["file"] == "tiny-int8-web.task" and row["published_mib"] == 0.01
    assert row["size_difference"] == pytest.approx(row["bytes"] / 2**20 / 0.01 - 1)
    printed = capsys.readouterr().out
    assert "published" in printed and f"{row['size_difference']:+.2%}" in printed
