"""Quantize stage: quantize the float `.tflite` with ai-edge-quantizer, one recipe at a time (time and memory:
docs/benchmarks.md, "Build memory").

What each recipe does (also in README "Recipes"): dynamic quantization stores weights as integers and lets the
runtime quantize activations on the fly (XNNPACK int8/int4 kernels); activations stay float in the file.

| recipe                     | transformer weights          | embedding (tied with the LM head) |
|----------------------------|------------------------------|-----------------------------------|
| fp32                       | fp32                         | fp32                              |
| dynamic_int8               | int8 per-channel             | int8 per-channel                  |
| dynamic_int4_block32       | int4, blocks of 32           | int8 per-channel                  |
| dynamic_int4_block128      | int4, blocks of 128          | int8 per-channel                  |
| dynamic_int4_block32_all   | int4, blocks of 32           | int4, blocks of 32                |
| dynamic_int4_block128_all  | int4, blocks of 128          | int4, blocks of 128               |
| int4_qat                   | int4 per-channel             | int4 per-channel                  |
| dynamic_int4_channel       | int4 per-channel             | int8 per-channel                  |
| dynamic_int4_channel_octav | int4 per-channel, OCTAV      | int8 per-channel                  |
| dynamic_int4_channel_mse   | int4 per-channel, MSE        | int8 per-channel                  |
| dynamic_int4_channel_hadamard | int4 per-channel, decomposed Hadamard rotation | int8 per-channel (rotated) |
| dynamic_int4_channel_gptq  | int4 per-channel, GPTQ       | int8 per-channel                  |
| dynamic_int4_channel_oscar | int4 per-channel, OSCAR      | int8 per-channel                  |
| dynamic_int4_block32_octav | int4 blocks of 32, OCTAV     | int8 per-channel                  |
| dynamic_int4_block32_gptq  | int4 blocks of 32, GPTQ      | int8 per-channel                  |
| dynamic_int4_block32_oscar | int4 blocks of 32, OSCAR     | int8 per-channel                  |
| dynamic_int4_block32_gptq_down8 / _attn8 | mixed, see below | int8 per-channel                |
| dynamic_int4_block32_gptq{,_down8,_attn8}_emb4 | as without `_emb4` | int4 blocks of 32, OCTAV   |

The algorithms are ai-edge-quantizer 0.10.0's own (`algorithm_manager.AlgorithmName`), applied to the transformer's
fully connected weights; everything else is min-max (MIN_MAX_UNIFORM_QUANT), as before:
- OCTAV: per channel or block, the clipping threshold that minimises the expected quantization error (no data).
- MSE: the scale that minimises the weights' mean squared error (no data; not blockwise).
- DECOMPOSED_HADAMARD_ROTATION: weights and activations multiplied by one random Hadamard matrix (ops added to the
  graph), which spreads outliers before min-max rounding; it rotates the embedding lookup too.
- GPTQ: rounds column by column, pushing each column's error onto the ones not yet rounded through the inverse
  Hessian of the layer's inputs (calibration data; min-max scales).
- OSCAR: per input channel, a scale balancing activation and weight ranges, folded into the weights, with a MUL op
  on the activations added to the graph, then activation-weighted optimal clipping (calibration data).
- Mixed (`_down8`, `_attn8`): GPTQ int4, with some projections of every layer int8 per-channel, min-max
  (`PROJECTION_SCOPES`): the FFN down projection, which sums the widest activations and so carries the largest
  rounding error into the residual stream (llama.cpp's Q4_K_M keeps part of them, and of attention's V, at 6 bits), and for
  `_attn8` the attention projections as well.
- `_emb4`: the tied embedding table int4 in blocks of 32 by OCTAV, for both its users (the lookup and the LM head,
  so the table is stored once; GPTQ would round the LM head's copy differently from the lookup's). The table is the
  largest matrix decode reads each token (about 60% of the 270M's parameters, 30% of the 1B's); measured, it makes
  the files smaller, not faster on XNNPACK (docs/benchmarks.md, "int4 recipes vs llama.cpp").
GPTQ and OSCAR calibrate on real text (`sdk_build.convert.calibration`, `sdk_build.convert.text_corpus`), which is part of the build
fingerprint. Which of them is the default int4 and why: README "Recipes" (`sdk_build.spec.default_int4`).

The block recipes keep the embedding at int8 because that reproduces Google's published 1B files (688 / 657 MiB;
all-int4 gives 543 MiB, litert-torch's in-converter `dynamic_int4_block32`). `int4_qat` is meant for the QAT
checkpoint (gemma-3-1b-it-qat-int4-unquantized), whose weights were trained to survive int4 per-channel.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from sdk_build.convert.calibration import CalibrationSpec, calibrate, interpreter_options
from sdk_build.errors import BuildError
from sdk_build.gpu.layout import EmbeddingStorage
from sdk_build.spec import Recipe
from sdk_build.system.atomic import atomic_path

PROJECTION_SCOPES: dict[str, tuple[str, ...]] = {
    # litert-torch's Gemma 3 decoder: GatedFeedForward's w2 is the down projection (w1 gate, w3 up); attention has
    # one fused q/k/v projection and an output projection. The op output names carry the module path.
    "down": (r"GatedFeedForward_ff/torch\.nn\.modules\.linear\.Linear_w2",),
    "attention": (r"Linear_qkv_projection", r"Linear_output_projection"),
}
"""Output-name regexes of the projections a mixed recipe (`Recipe.int8_projections`) keeps at int8."""


def build_recipe(recipe: Recipe) -> list[dict] | None:
    """The ai-edge-quantizer recipe for `recipe` (None for fp32: nothing to quantize).

    Each entry is (output-name regex, op, bits, granularity); later entries override earlier ones for the ops
    they match. The block recipes add int8 per-channel for both users of Gemma's tied embedding table, the
    lookup and the LM head (the FULLY_CONNECTED op whose output litert-torch names `*logits*`, or, in the GPU
    layout, the parts under `lm_head`). Both must get
    the same quantization: when they differ, ai-edge-quantizer keeps one copy of the 1B model's 262144 x 1152
    table per consumer and per signature (5 int8 copies + 1 int4 copy: a 2 GB file).
    """
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName as A

    if recipe is Recipe.FP32:
        return None
    ops, granularity = qtyping.TFLOperationName, qtyping.QuantGranularity
    int8_tied_embedding = [
        (".*", ops.EMBEDDING_LOOKUP, 8, granularity.CHANNELWISE),
        (".*logits.*", ops.FULLY_CONNECTED, 8, granularity.CHANNELWISE),
        # the GPU layout's LM head parts (sdk_build/gpu/layout.py) are named after the module, not `logits`
        (".*lm_head.*", ops.FULLY_CONNECTED, 8, granularity.CHANNELWISE),
    ]

    # `_emb4`: both users of the tied table int4 blocks of 32 by OCTAV (data-free, so the lookup and the LM head
    # get the same integers from the same weights, and the table is stored once)
    octav_tied_embedding = [(regex, op, 4, granularity.BLOCKWISE_32, A.OCTAV)
                            for regex, op, _, _ in int8_tied_embedding]

    def int4_with(gran: object, algorithm: str) -> list[tuple]:
        """int4 everywhere by min-max, the fully connected weights by `algorithm`, then the tied embedding (int8, or
        int4 by OCTAV for `_emb4`)."""
        return [(".*", ops.ALL_SUPPORTED, 4, gran), (".*", ops.FULLY_CONNECTED, 4, gran, algorithm),
                *(octav_tied_embedding if recipe.octav_embedding else int8_tied_embedding)]

    def gptq_mixed(gran: object) -> list[tuple]:
        """GPTQ int4, then int8 per-channel, min-max, for the projections `recipe` keeps at 8 bits in every layer
        (`Recipe.int8_projections`, matched by `PROJECTION_SCOPES`)."""
        return [*int4_with(gran, A.GPTQ), *[(regex, ops.FULLY_CONNECTED, 8, granularity.CHANNELWISE)
                                            for kind in recipe.int8_projections for regex in PROJECTION_SCOPES[kind]]]

    channel, block32 = granularity.CHANNELWISE, granularity.BLOCKWISE_32
    plan: dict[Recipe, list[tuple]] = {
        Recipe.DYNAMIC_INT8: [(".*", ops.ALL_SUPPORTED, 8, granularity.CHANNELWISE)],
        Recipe.DYNAMIC_INT4_BLOCK32: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_32), *int8_tied_embedding],
        Recipe.DYNAMIC_INT4_BLOCK128: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_128), *int8_tied_embedding],
        Recipe.DYNAMIC_INT4_BLOCK32_ALL: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_32)],
        Recipe.DYNAMIC_INT4_BLOCK128_ALL: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_128)],
        Recipe.INT4_QAT: [(".*", ops.ALL_SUPPORTED, 4, granularity.CHANNELWISE)],
        Recipe.DYNAMIC_INT4_CHANNEL: [(".*", ops.ALL_SUPPORTED, 4, channel), *int8_tied_embedding],
        Recipe.DYNAMIC_INT4_CHANNEL_OCTAV: int4_with(channel, A.OCTAV),
        Recipe.DYNAMIC_INT4_CHANNEL_MSE: int4_with(channel, A.MSE),
        Recipe.DYNAMIC_INT4_CHANNEL_GPTQ: int4_with(channel, A.GPTQ),
        Recipe.DYNAMIC_INT4_CHANNEL_OSCAR: int4_with(channel, A.OSCAR),
        Recipe.DYNAMIC_INT4_BLOCK32_OCTAV: int4_with(block32, A.OCTAV),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ: int4_with(block32, A.GPTQ),
        Recipe.DYNAMIC_INT4_BLOCK32_OSCAR: int4_with(block32, A.OSCAR),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8: gptq_mixed(block32),
        Recipe.DYNAMIC_INT4_CHANNEL_GPTQ_DOWN8: gptq_mixed(channel),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8: gptq_mixed(block32),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_EMB4: int4_with(block32, A.GPTQ),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8_EMB4: gptq_mixed(block32),
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8_EMB4: gptq_mixed(block32),
        # The rotation must cover both users of the tied table alike (else the quantizer stores it twice).
        Recipe.DYNAMIC_INT4_CHANNEL_HADAMARD: [
            (".*", ops.ALL_SUPPORTED, 4, channel, A.DECOMPOSED_HADAMARD_ROTATION),
            *[(regex, op, bits, gran, A.DECOMPOSED_HADAMARD_ROTATION) for regex, op, bits, gran in int8_tied_embedding],
        ],
    }
    manager = recipe_manager.RecipeManager()
    for regex, operation, bits, gran, *algorithm in plan[recipe]:
        manager.add_dynamic_config(regex=regex, operation_name=operation, num_bits=bits, granularity=gran,
                                   **({"algorithm_key": algorithm[0]} if algorithm else {}))
    return manager.get_quantization_recipe()


def embedding_storage(recipe: Recipe) -> EmbeddingStorage:
    """How `recipe` stores the tied embedding table (the table above): what the GPU layout must fit per buffer.

    Every recipe has its own entry (a new recipe without one fails here, not in a GPU build)."""
    int8, int4_block32 = EmbeddingStorage(bits=8), EmbeddingStorage(bits=4, block=32)
    return {
        Recipe.FP32: EmbeddingStorage(bits=32),
        Recipe.DYNAMIC_INT8: int8,
        Recipe.DYNAMIC_INT4_BLOCK32: int8,
        Recipe.DYNAMIC_INT4_BLOCK128: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_ALL: int4_block32,
        Recipe.DYNAMIC_INT4_BLOCK128_ALL: EmbeddingStorage(bits=4, block=128),
        Recipe.INT4_QAT: EmbeddingStorage(bits=4),
        Recipe.DYNAMIC_INT4_CHANNEL: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_OCTAV: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_MSE: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_HADAMARD: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_GPTQ: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_OSCAR: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_OCTAV: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_OSCAR: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8: int8,
        Recipe.DYNAMIC_INT4_CHANNEL_GPTQ_DOWN8: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8: int8,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_EMB4: int4_block32,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8_EMB4: int4_block32,
        Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8_EMB4: int4_block32,
    }[recipe]


def names_only_interpreters() -> contextlib.AbstractContextManager[None]:
    """While it lasts, every interpreter ai-edge-quantizer 0.10.0 makes is built on TFLite's builtin kernels with no
    tensors allocated. Quantizing runs nothing: given calibration statistics, `Quantizer.quantize` makes an
    interpreter only to list each signature's tensor names (`_ensure_model_qsv_sufficient`), but makes it with
    XNNPACK and allocates it, and XNNPACK then packs its own copy of the float weights for every signature of a
    multi-signature file: on the 1B's four prefill signatures and decode, about 14 GB more than the build needs at
    any other moment (docs/building.md, "The default int4"). Names and constants read the same either way, so the
    file written is the same byte for byte."""
    return interpreter_options(allocate_tensors=False, use_xnnpack=False)


def quantize_tflite(float_model: Path, recipe: Recipe, destination: Path, *, tokenizer: Path | None = None,
                    calibration: CalibrationSpec | None = None) -> Path:
    """Write the `recipe`-quantized copy of `float_model` to `destination` (atomically).

    Calibrated recipes (`Recipe.calibrated`) run `calibration`'s text, tokenized by `tokenizer`, through the float
    model first (`sdk_build.convert.calibration`). The quantizer writes through a memory map; `mmap_guard` makes a full disk
    an OSError there instead of SIGBUS.
    """
    from ai_edge_quantizer import quantizer

    from sdk_build.system import mmap_guard

    mmap_guard.install()
    plan = build_recipe(recipe)
    statistics = None
    if plan is not None and recipe.calibrated:
        if tokenizer is None:
            raise BuildError(f"{recipe.value} calibrates on text: it needs the checkpoint's tokenizer")
        statistics = calibrate(float_model, plan, tokenizer, calibration or CalibrationSpec())
    with atomic_path(destination) as tmp:
        if plan is None:
            shutil.copyfile(float_model, tmp)
        else:
            engine = quantizer.Quantizer(str(float_model))
            engine.load_quantization_recipe(plan)
            with contextlib.redirect_stdout(io.StringIO()), names_only_interpreters():  # it prints a size summary
                result = engine.quantize(statistics)
            tmp.unlink()
            result.export_model(str(tmp), overwrite=True)
            check_packed(tmp, recipe)
    return destination


_PACKED_BITS = {9: 8, 17: 4}  # TensorType INT8, INT4


def check_packed(quantized: Path, recipe: Recipe) -> None:
    """Fail when a weight tensor's bytes do not fit its integer type: an algorithm that returned no integers for a
    weight leaves its float bytes under an int4/int8 type, which LiteRT reads as garbage without complaint."""
    import math

    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = tfl.read_model(tfl.get_model_content(Path(quantized)))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            bits = _PACKED_BITS.get(tensor.type)
            data = model.buffers[tensor.buffer].data if tensor.buffer else None
            if bits is None or data is None:
                continue
            expected = math.ceil(math.prod(int(d) for d in tensor.shape) * bits / 8)
            if len(data) != expected:
                raise BuildError(
                    f"{recipe.value}: ai-edge-quantizer wrote {len(data):,} bytes for the int{bits} tensor "
                    f"{tfl.get_tensor_name(tensor)} {list(tensor.shape)} (expected {expected:,}); the file would "
                    "compute garbage, so it is not written"
                )
