"""The algorithm recipes (issue 21) on the tiny model: each builds, runs in LiteRT-LM, stores its weights once and
packed, and its fingerprint follows the algorithm and the calibration text; calibration and held-out text."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk_build.artifacts.manifest import load_manifest
from sdk_build.convert.calibration import (
    CalibrationSpec,
    WeightConsumers,
    calibrated_signature,
    share_statistics,
    signature_inputs,
    token_chunks,
)
from sdk_build.convert.export import ExportOptions
from sdk_build.convert.quantize import embedding_storage
from sdk_build.convert.text_corpus import CALIBRATION, HELD_OUT, TextSet, prose_paragraphs
from sdk_build.gpu.layout import EmbeddingStorage
from sdk_build.pipeline import build, spec_fingerprint
from sdk_build.spec import BundleFormat, Recipe, make_variant
from sdk_build.verify import verify_bundle
from tests.conftest import TINY_EKV, TINY_PREFILL

ALGORITHM_RECIPES = [r for r in Recipe if r.algorithm is not None]
MIXED_RECIPES = [r for r in Recipe if r.int8_projections]
DEFAULT_CALIBRATION = CalibrationSpec()
OTHER_TEXT = TextSet("python-whatsnew-3.11", ("whatsnew/3.11.rst.txt",))


@pytest.fixture(scope="module")
def recipe_bundles(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_dir: Path,
                   gemma_edge_cache: Path) -> Path:
    """Every algorithm recipe plus its min-max counterparts, `.task` and `.litertlm`, from one float export."""
    out = tmp_path_factory.mktemp("int4-recipes")
    for recipe in [Recipe.DYNAMIC_INT4_CHANNEL, Recipe.DYNAMIC_INT4_BLOCK32, Recipe.DYNAMIC_INT4_BLOCK32_ALL,
                   *ALGORITHM_RECIPES]:
        variant = make_variant(recipe.value, TINY_EKV, TINY_PREFILL, formats=["task", "litertlm"])
        build(str(tiny_checkpoint_dir), variant, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    return out


@pytest.mark.parametrize("recipe", ALGORITHM_RECIPES, ids=lambda r: r.value)
@pytest.mark.parametrize("fmt", ["task", "litertlm"])
def test_recipe_builds_and_runs_in_litert_lm(recipe_bundles: Path, gemma_edge_cache: Path, recipe: Recipe,
                                             fmt: str) -> None:
    entry = next(e for e in load_manifest(recipe_bundles).bundles if e.quantization == recipe.value and e.format == fmt)
    report = verify_bundle(recipe_bundles / entry.file, cache_dir=gemma_edge_cache, new_tokens=8, perplexity_tokens=256)
    assert report.passed, report.problems
    assert all(result.bundle_tokens for result in report.results)
    assert report.perplexity is not None and report.perplexity.bundle is not None, report.perplexity
    assert not report.perplexity.problems
    # a random-weight model is near uniform: an int4 file that computes garbage lands far from the reference
    assert 0.5 < report.perplexity.ratio < 2.0


def test_algorithms_keep_each_weight_once_and_packed(recipe_bundles: Path) -> None:
    """Same tensors as min-max, so the same file size: no weight copied per signature, none left unpacked (GPTQ's
    statistics are shared across signatures; see sdk_build.convert.calibration), and the int8 embedding kept."""
    sizes = {e.quantization: e.extra["tflite_bytes"] for e in load_manifest(recipe_bundles).bundles if e.format == "task"}
    channel, block32 = sizes["dynamic_int4_channel"], sizes["dynamic_int4_block32"]
    for recipe in ("dynamic_int4_channel_octav", "dynamic_int4_channel_mse", "dynamic_int4_channel_gptq"):
        assert sizes[recipe] == channel, recipe
    for recipe in ("dynamic_int4_block32_octav", "dynamic_int4_block32_gptq"):
        assert sizes[recipe] == block32, recipe
    # OSCAR adds one MUL and its per-channel scale per fully connected op; the rotation adds its ops
    assert channel < sizes["dynamic_int4_channel_oscar"] < 1.2 * channel
    assert channel < sizes["dynamic_int4_channel_hadamard"] < 1.5 * channel
    # `_emb4`: the tied table int4 blocks of 32 by OCTAV, stored once (the lookup and the LM head agree on its
    # integers): the same tensors as min-max int4-everywhere, and smaller than with the int8 table
    entries = {e.quantization: e for e in load_manifest(recipe_bundles).bundles if e.format == "task"}
    assert sizes["dynamic_int4_block32_gptq_emb4"] == sizes["dynamic_int4_block32_all"]
    emb4, min_max = (_embedding_table(recipe_bundles / entries[r].file)
                     for r in ("dynamic_int4_block32_gptq_emb4", "dynamic_int4_block32_all"))
    assert emb4 != min_max
    for recipe in (r for r in Recipe if r.octav_embedding):
        assert sizes[recipe.value] < sizes[recipe.value.removesuffix("_emb4")], recipe
    assert entries["dynamic_int4_channel_gptq"].extra["calibration"]["text"]["package"] == "python3.11-doc"
    assert "calibration" not in entries["dynamic_int4_channel_octav"].extra


def _ops(bundle: Path, builtin_code: int) -> Iterator[tuple[Any, Any, Any]]:
    """(model, subgraph, op) for every op of `bundle` with TFLite's `builtin_code`, in every signature."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    from sdk_build.gpu.buffers import model_bytes

    model = tfl.read_model(model_bytes(bundle))
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin_code:
                yield model, subgraph, op


def _embedding_table(bundle: Path) -> bytes:
    """The bytes of the table the embedding lookup reads in `bundle` (OCTAV's clipping makes them differ from
    min-max's)."""
    for model, subgraph, op in _ops(bundle, 7):  # EMBEDDING_LOOKUP
        return bytes(model.buffers[subgraph.tensors[op.inputs[1]].buffer].data)
    raise AssertionError(f"no embedding lookup in {bundle}")


def _fully_connected_weight_types(bundle: Path) -> dict[str, set[str]]:
    """Projection kind -> the tensor types of its fully connected weights in `bundle` (every signature)."""
    import re

    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    from sdk_build.convert.quantize import PROJECTION_SCOPES
    from sdk_build.gpu.buffers import DTYPE_NAMES

    found: dict[str, set[str]] = {}
    for _, subgraph, op in _ops(bundle, 9):  # FULLY_CONNECTED
        output = tfl.get_tensor_name(subgraph.tensors[op.outputs[0]])
        kind = next((k for k, regexes in PROJECTION_SCOPES.items() if any(re.search(r, output) for r in regexes)),
                    "logits" if "logits" in output else "other")
        found.setdefault(kind, set()).add(DTYPE_NAMES.get(subgraph.tensors[op.inputs[1]].type, "other"))
    return found


@pytest.mark.parametrize("recipe", MIXED_RECIPES, ids=lambda r: r.value)
def test_mixed_recipes_keep_exactly_their_projections_at_int8(recipe_bundles: Path, recipe: Recipe) -> None:
    """The regexes of `PROJECTION_SCOPES` must find the projections in the exported graph: a rename in litert-torch
    would otherwise build a plain int4 file under a mixed recipe's name."""
    entry = next(e for e in load_manifest(recipe_bundles).bundles if e.quantization == recipe.value and e.format == "task")
    types = _fully_connected_weight_types(recipe_bundles / entry.file)
    for kind in ("down", "attention"):
        assert types[kind] == ({"int8"} if kind in recipe.int8_projections else {"int4"}), (kind, types)
    assert types["other"] == {"int4"} and types["logits"] == {"int4" if recipe.octav_embedding else "int8"}, types
    plain = (Recipe.DYNAMIC_INT4_CHANNEL_GPTQ if "channel" in recipe.value else
             Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_EMB4 if recipe.octav_embedding else Recipe.DYNAMIC_INT4_BLOCK32_GPTQ)
    sizes = {e.quantization: e.extra["tflite_bytes"] for e in load_manifest(recipe_bundles).bundles if e.format == "task"}
    assert sizes[recipe.value] > sizes[plain.value]


def test_fingerprint_changes_with_algorithm_and_calibration_text(tiny_checkpoint_dir: Path,
                                                                 gemma_edge_cache: Path) -> None:
    from sdk_build.sources import resolve_checkpoint

    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), gemma_edge_cache, allow_custom_shape=True)
    options = ExportOptions()

    def fingerprint(recipe: Recipe, calibration: CalibrationSpec = DEFAULT_CALIBRATION) -> str:
        variant = make_variant(recipe.value, TINY_EKV, TINY_PREFILL)
        return spec_fingerprint(checkpoint, variant, BundleFormat.TASK, options, calibration)

    by_recipe = {r: fingerprint(r) for r in [Recipe.DYNAMIC_INT4_CHANNEL, *ALGORITHM_RECIPES]}
    assert len(set(by_recipe.values())) == len(by_recipe)
    other = CalibrationSpec(text=OTHER_TEXT)
    fewer = dataclasses.replace(CalibrationSpec(), chunks=4)
    for recipe in (Recipe.DYNAMIC_INT4_CHANNEL_GPTQ, Recipe.DYNAMIC_INT4_BLOCK32_OSCAR):
        assert len({fingerprint(recipe), fingerprint(recipe, other), fingerprint(recipe, fewer)}) == 3
    assert fingerprint(Recipe.DYNAMIC_INT4_CHANNEL_OCTAV, other) == by_recipe[Recipe.DYNAMIC_INT4_CHANNEL_OCTAV]


def test_other_calibration_text_rebuilds_with_other_weights(tiny_checkpoint_dir: Path, gemma_edge_cache: Path,
                                                            tmp_path: Path) -> None:
    variant = make_variant("dynamic_int4_channel_gptq", TINY_EKV, TINY_PREFILL)
    first = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    again = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    other = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True,
                  calibration=CalibrationSpec(text=OTHER_TEXT))
    assert not first.skipped and again.skipped and not other.skipped
    assert other.entries[0].sha256 != first.entries[0].sha256
    assert other.entries[0].extra["calibration"]["text"]["name"] == OTHER_TEXT.name


def test_every_recipe_says_how_it_stores_the_embedding() -> None:
    for recipe in Recipe:
        storage = embedding_storage(recipe)
        assert storage.bits in (4, 8, 32)
    assert all(embedding_storage(r) == (EmbeddingStorage(bits=4, block=32) if r.octav_embedding else
                                        EmbeddingStorage(bits=8)) for r in ALGORITHM_RECIPES)


def test_calibration_and_held_out_text_share_no_document() -> None:
    assert not set(CALIBRATION.files) & set(HELD_OUT.files)
    calibration, held_out = set(CALIBRATION.paragraphs()), set(HELD_OUT.paragraphs())
    assert len(calibration) > 300 and len(held_out) > 150
    assert not calibration & held_out
    assert CALIBRATION.fingerprint() != HELD_OUT.fingerprint()


def test_prose_paragraphs_keep_running_text_only() -> None:
    source = """Title
=====

This is a paragraph with :func:`sorted` and ``code`` and **bold** words in it, long enough.

::

    >>> print("code block")

Here is an example of a thing that introduces code, as docs do::

.. note:: a directive that is not prose at all but a long line anyway

Another real paragraph follows here
on two lines, with a `link <https://example.org>`_ inside it.
"""
    assert prose_paragraphs(source) == [
        "This is a paragraph with sorted and code and bold words in it, long enough.",
        "Another real paragraph follows here on two lines, with a link inside it.",
    ]


def test_missing_text_package_is_one_clear_line(tmp_path: Path) -> None:
    from sdk_build.errors import BuildError

    with pytest.raises(BuildError, match="apt-get install python3.11-doc"):
        TextSet("gone", ("nothing.rst.txt",), root=tmp_path).text()


def test_calibrated_signature_is_the_widest_within_the_limit() -> None:
    shapes = {"prefill_32": 32, "prefill_128": 128, "prefill_512": 512, "decode": 1}
    details = {name: {"tokens": {"shape": [1, n]}} for name, n in shapes.items()}
    assert calibrated_signature(details, 128) == ("prefill_128", 128)
    assert calibrated_signature(details, 600) == ("prefill_512", 512)
    from sdk_build.errors import BuildError

    with pytest.raises(BuildError, match="no prefill signature"):
        calibrated_signature(details, 16)


def test_calibration_inputs_are_real_text_from_an_empty_cache(tiny_checkpoint_dir: Path) -> None:
    import numpy as np
    import sentencepiece as spm

    tokenizer_path = tiny_checkpoint_dir / "tokenizer.model"
    chunks = token_chunks(tokenizer_path, CALIBRATION.text(), 32, 3)
    tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    assert [len(c) for c in chunks] == [32, 32, 32] and all(c[0] == tokenizer.bos_id() for c in chunks)
    assert tokenizer.decode(chunks[0][1:]) in CALIBRATION.text()
    details = {"tokens": {"shape": [1, 32], "dtype": np.int32}, "input_pos": {"shape": [32], "dtype": np.int32},
               "mask": {"shape": [1, 1, 32, 64], "dtype": np.float32},
               "kv_cache_k_0": {"shape": [1, 1, 64, 8], "dtype": np.float32}}
    inputs = signature_inputs(details, chunks[0])
    assert inputs["input_pos"].tolist() == list(range(32))
    mask = inputs["mask"][0, 0]
    assert (mask[5, :6] == 0).all() and (mask[5, 6:] < -1e30).all()
    assert not inputs["kv_cache_k_0"].any()


def test_weights_no_calibrated_signature_reads_get_plain_rounding() -> None:
    import numpy as np

    measured = {"hessian": np.ones((4, 4)), "num_samples": np.array(16)}
    shared = share_statistics({"p128/a": measured}, [WeightConsumers(4, ["p32/a", "p128/a", "decode/a"]),
                                                     WeightConsumers(3, ["decode/last"])])
    assert shared["p32/a"] is measured and shared["decode/a"] is measured
    assert (shared["decode/last"]["hessian"] == np.eye(3)).all()


def test_held_out_segments_tokenize_as_in_the_whole_text(tiny_checkpoint_dir: Path) -> None:
    import sentencepiece as spm

    from sdk_build.verify.perplexity import segments

    tokenizer = spm.SentencePieceProcessor(model_file=str(tiny_checkpoint_dir / "tokenizer.model"))
    pieces = segments(tokenizer, tokens=1000, segment_tokens=200)
    assert sum(len(p.target_ids) for p in pieces) >= 1000
    for piece in pieces:
        assert piece.target.startswith(" ") and len(piece.target_ids) <= 201
        assert list(piece.target_ids) == tokenizer.encode(piece.target)
        assert piece.target.strip() in HELD_OUT.text()


def test_held_out_segments_fit_half_the_cache(tiny_checkpoint_dir: Path) -> None:
    import sentencepiece as spm

    from sdk_build.verify.perplexity import SEGMENT_TOKENS, held_out_segments

    tokenizer = spm.SentencePieceProcessor(model_file=str(tiny_checkpoint_dir / "tokenizer.model"))
    small = held_out_segments(tokenizer, ekv=128, tokens=300)
    assert sum(len(p.target_ids) for p in small) >= 300
    assert all(len(p.target_ids) <= 64 + 1 for p in small)  # one more: the leading space re-encoded
    large = held_out_segments(tokenizer, ekv=4096, tokens=300)
    assert max(len(p.target_ids) for p in large) > 64 and all(len(p.target_ids) <= SEGMENT_TOKENS + 1 for p in large)


def test_lean_calibration_keeps_every_statistic_gptq_reads(recipe_bundles: Path, tiny_checkpoint_dir: Path,
                                                           gemma_edge_cache: Path) -> None:
    """`calibrate` runs ai-edge-quantizer's calibrator leaner than it runs by default (builtin kernels, activations
    only, GPTQ statistics of op inputs only: what lets the 1B calibrate on a 23 GB machine, docs/building.md).
    Against the stock calibrator on the same text: the same Hessian for every fully connected input, to the kernels'
    rounding, and no Hessian of an op output, which the stock one takes and GPTQ never reads."""
    import numpy as np
    from ai_edge_quantizer import calibrator, recipe_manager

    from sdk_build.convert.calibration import calibrate, calibration_samples, read_float_model, shared_weight_consumers
    from sdk_build.convert.quantize import build_recipe

    entry = next(e for e in load_manifest(recipe_bundles).bundles if e.quantization == "dynamic_int4_block32_gptq")
    prefill = "-".join(str(n) for n in TINY_PREFILL)
    [float_model] = (gemma_edge_cache / "exports").glob(
        f"{entry.checkpoint['fingerprint']}_ekv{TINY_EKV}_p{prefill}_{ExportOptions().key()}_*.tflite")
    tokenizer = tiny_checkpoint_dir / "tokenizer.model"
    spec = dataclasses.replace(CalibrationSpec(), chunks=2)
    plan = build_recipe(Recipe.DYNAMIC_INT4_BLOCK32_GPTQ)

    lean = calibrate(float_model, plan, tokenizer, spec)
    name, samples = calibration_samples(float_model, tokenizer, spec)
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(plan)
    stock_engine = calibrator.Calibrator(str(float_model), num_threads=2)
    stock_engine.calibrate({name: samples}, manager)
    stock = stock_engine.get_model_qsvs()

    fc_inputs = {n for w in shared_weight_consumers(read_float_model(float_model)) for n in w.activations
                 if "hessian" in stock.get(n, {})}
    assert fc_inputs
    for tensor in fc_inputs:
        np.testing.assert_allclose(lean[tensor]["hessian"], stock[tensor]["hessian"], rtol=1e-3, atol=1e-4,
                                   err_msg=tensor)
    outputs_only = {n for n, qsv in stock.items() if "hessian" in qsv} - fc_inputs
    assert outputs_only, "the stock calibrator no longer takes output Hessians: lean_calibration's patch may go"
    assert not [n for n in outputs_only if "hessian" in lean.get(n, {})]


def test_quantizing_without_xnnpack_interpreters_writes_the_same_file(recipe_bundles: Path, tiny_checkpoint_dir: Path,
                                                                      gemma_edge_cache: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`names_only_interpreters` (the 1B default's build: 13.6 GiB instead of 23.1, docs/building.md) changes what
    the quantizer's interpreters cost, not what it writes: the same bytes as with ai-edge-quantizer's own XNNPACK,
    allocated interpreter, and no interpreter of the build is both XNNPACK and allocated any more."""
    import contextlib
    import hashlib

    from ai_edge_quantizer.utils import tfl_interpreter_utils

    from sdk_build.convert import quantize

    entry = next(e for e in load_manifest(recipe_bundles).bundles
                 if e.quantization == "dynamic_int4_block32_gptq_down8")
    prefill = "-".join(str(n) for n in TINY_PREFILL)
    [float_model] = (gemma_edge_cache / "exports").glob(
        f"{entry.checkpoint['fingerprint']}_ekv{TINY_EKV}_p{prefill}_{ExportOptions().key()}_*.tflite")
    tokenizer = tiny_checkpoint_dir / "tokenizer.model"
    spec = dataclasses.replace(CalibrationSpec(), chunks=2)
    recipe = Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8

    made: list[dict[str, Any]] = []
    original = tfl_interpreter_utils.create_tfl_interpreter

    def recording(tflite_model, *args, **kwargs):
        made.append(kwargs)
        return original(tflite_model, *args, **kwargs)

    monkeypatch.setattr(tfl_interpreter_utils, "create_tfl_interpreter", recording)
    lean = quantize.quantize_tflite(float_model, recipe, tmp_path / "lean.tflite", tokenizer=tokenizer,
                                    calibration=spec)
    lean_calls = list(made)
    monkeypatch.setattr(quantize, "names_only_interpreters", contextlib.nullcontext)
    made.clear()
    stock = quantize.quantize_tflite(float_model, recipe, tmp_path / "stock.tflite", tokenizer=tokenizer,
                                     calibration=spec)
    assert hashlib.sha256(lean.read_bytes()).digest() == hashlib.sha256(stock.read_bytes()).digest()
    assert any(k.get("allocate_tensors", True) and k.get("use_xnnpack", True) for k in made), \
        "the quantizer no longer makes an allocated XNNPACK interpreter: names_only_interpreters may go"
    assert not [k for k in lean_calls if k.get("allocate_tensors", True) and k.get("use_xnnpack", True)]
