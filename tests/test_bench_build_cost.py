"""bench.build_cost's pure logic: the matrix file it hands `sdk-build matrix`, variant selection, failure reports.

The timed runs themselves are a benchmark (`nox -s bench_build_cost`), never a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.build_cost import failure_summary, matrix_toml, select_variants, variant_label
from sdk_build.matrix import DEFAULT_MATRIX, load_matrix


def test_matrix_toml_round_trips_the_selected_variants(tmp_path: Path) -> None:
    """Ours must build exactly what the reference route builds: same recipes, ekv, prefill sets, names, targets."""
    planned = load_matrix(DEFAULT_MATRIX).plan(None)
    chosen = select_variants(planned, ["dynamic_int8@4096", "gemma3-1b-it-int4-web", "int4_qat@2048"])
    assert sorted(variant_label(p) for p in chosen) == [
        "dynamic_int8@ekv4096",  # android-cpu
        "dynamic_int8@ekv4096",  # android-gpu: the same recipe, its own GPU-layout file
        "gemma3-1b-it-int4",
        "gemma3-1b-it-int4-gpu",
        "gemma3-1b-it-int4-web",
    ]
    path = tmp_path / "matrix.toml"
    path.write_text(matrix_toml("random:gemma3-1b-it", chosen))
    again = load_matrix(path).plan(None)
    assert [(p.spec.recipe, p.spec.ekv, p.spec.prefill_lengths, p.spec.output_name, p.spec.target) for p in again] == [
        (p.spec.recipe, p.spec.ekv, p.spec.prefill_lengths, p.spec.output_name, p.spec.target) for p in chosen
    ]


def test_unknown_variant_names_what_the_matrix_has() -> None:
    with pytest.raises(SystemExit, match="unknown variants \\['dynamic_int8@999'\\].*dynamic_int8@1280"):
        select_variants(load_matrix(DEFAULT_MATRIX).plan(None), ["dynamic_int8@999"])


def test_failure_summary_names_an_out_of_memory_kill() -> None:
    message = "python -m litert_torch...convert_gemma3_to_tflite --quantize=none exited -9:\nloading\nconverting"
    summary = failure_summary(message)
    assert "exited -9" in summary and "out of memory?" in summary and summary.endswith("converting")
    assert "out of memory" not in failure_summary("convert exited 1:\nValueError: bad ekv")
