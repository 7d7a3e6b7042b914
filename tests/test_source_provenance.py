"""Provenance end to end on tiny models: a GGUF and an MLX checkpoint each build an int8 `.task` that verify passes
against the dequantized source, which it names; the manifest and catalog record the source's format and
quantization; the re-quantization warning is said once per source; `modelscope:` fails fast offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sdk_build.errors import SourceError
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.provenance import SourceInfo, reference_description, requantization_warning
from tests.source_support import write_tiny_gguf


def _q8_gguf(checkpoint_dir: Path, path: Path) -> Path:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    return write_tiny_gguf(path, checkpoint_dir,
                           lambda name, v: (v, Q.F32) if v.ndim < 2 else (quantize(v, Q.Q8_0), Q.Q8_0))


def _mlx_4bit(checkpoint_dir: Path, path: Path) -> Path:
    pytest.importorskip("mlx_lm")
    from conftest import import_mlx_convert

    convert = import_mlx_convert()

    convert(str(checkpoint_dir), mlx_path=str(path), quantize=True, q_bits=4, q_group_size=64, dtype="bfloat16")
    return path


@pytest.mark.parametrize("make, expected", [
    (_q8_gguf, ("gguf", "Q8_0")),
    (_mlx_4bit, ("mlx", "4bit-g64")),
], ids=["gguf-Q8_0", "mlx-4bit"])
def test_quantized_source_builds_verifies_and_is_recorded(make, expected, tiny_checkpoint_dir: Path, tmp_path: Path,
                                                          gemma_edge_cache: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    from sdk_build.artifacts.catalog import SCHEMA_FILE, build_catalog
    from sdk_build.artifacts.manifest import load_manifest
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant
    from sdk_build.verify import verify_bundle

    source = make(tiny_checkpoint_dir, tmp_path / "tiny-gemma3-it-source.gguf" if expected[0] == "gguf" else
                  tmp_path / "tiny-gemma3-it-source")
    out = tmp_path / "bundles"
    for recipe in ("dynamic_int8", "dynamic_int4_block32"):
        build(str(source), make_variant(recipe, 256, [32, 128]), out, cache_dir=gemma_edge_cache,
              allow_custom_shape=True)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(warnings) == 1, warnings  # once per source, not once per variant
    assert f"source is {expected[1]}" in warnings[0]

    entry = next(e for e in load_manifest(out).bundles if e.quantization == "dynamic_int8")
    assert (entry.checkpoint["format"], entry.checkpoint["quantization"]) == expected
    report = verify_bundle(out / entry.file, cache_dir=gemma_edge_cache, new_tokens=8,
                           prompts=("The capital of France is", "Gemma runs on"))
    assert report.passed, report.problems
    assert report.top1_agreement >= 0.8
    assert report.reference == f"fp32 model from the dequantized {expected[1]} {expected[0].upper()} weights"

    catalog = build_catalog(load_manifest(out).bundles)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(catalog)
    bundle = next(b for b in catalog["bundles"] if b["file"] == entry.file)
    assert (bundle["source"]["checkpoint_format"], bundle["source"]["checkpoint_quantization"]) == expected
    assert bundle["source"]["checkpoint"] == "local:" + source.name


def test_requantization_warning_only_for_quantized_sources() -> None:
    q4 = SourceInfo("gguf", "Q4_K_M", quantized=True)
    bf16 = SourceInfo("gguf", "BF16", quantized=False)
    assert requantization_warning(q4, "dynamic_int4_block32").startswith(
        "source is Q4_K_M GGUF: dynamic_int4_block32 on top of it loses more than from the float weights")
    assert requantization_warning(q4, "fp32") is None
    assert requantization_warning(bf16, "dynamic_int8") is None
    assert reference_description(bf16) == "fp32 model from the BF16 GGUF weights"


def test_hugging_face_folder_records_its_dtype(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), tmp_path, allow_custom_shape=True)
    assert (checkpoint.source.format, checkpoint.source.quantization, checkpoint.source.quantized) == \
        ("safetensors", "F32", False)


def test_modelscope_fails_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("modelscope")
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot download LLM-Research/gemma-3-1b-it from ModelScope "
                                          r"\(http://127.0.0.1:9 unreachable: .*\) and it is not in ") as caught:
        resolve_checkpoint("modelscope:LLM-Research/gemma-3-1b-it@master", tmp_path)
    assert time.monotonic() - started < 15
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "checkpoints").exists()


def test_bad_modelscope_reference(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="bad ModelScope reference"):
        resolve_checkpoint("modelscope:no-slash", tmp_path)
