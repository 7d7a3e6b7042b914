"""Stage 2b: quantize the float `.tflite` with ai-edge-quantizer, one recipe at a time (seconds, ~3 GB for 1B).

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

The block recipes keep the embedding at int8 because that reproduces Google's published 1B files (688 / 657 MiB;
all-int4 gives 543 MiB, litert-torch's in-converter `dynamic_int4_block32`). `int4_qat` is meant for the QAT
checkpoint (gemma-3-1b-it-qat-int4-unquantized), whose weights were trained to survive int4 per-channel.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from sdk_build.atomic import atomic_path
from sdk_build.gpu.layout import EmbeddingStorage
from sdk_build.spec import Recipe


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

    if recipe is Recipe.FP32:
        return None
    ops, granularity = qtyping.TFLOperationName, qtyping.QuantGranularity
    int8_tied_embedding = [
        (".*", ops.EMBEDDING_LOOKUP, 8, granularity.CHANNELWISE),
        (".*logits.*", ops.FULLY_CONNECTED, 8, granularity.CHANNELWISE),
        # the GPU layout's LM head parts (sdk_build/gpu/layout.py) are named after the module, not `logits`
        (".*lm_head.*", ops.FULLY_CONNECTED, 8, granularity.CHANNELWISE),
    ]
    plan: dict[Recipe, list[tuple]] = {
        Recipe.DYNAMIC_INT8: [(".*", ops.ALL_SUPPORTED, 8, granularity.CHANNELWISE)],
        Recipe.DYNAMIC_INT4_BLOCK32: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_32), *int8_tied_embedding],
        Recipe.DYNAMIC_INT4_BLOCK128: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_128), *int8_tied_embedding],
        Recipe.DYNAMIC_INT4_BLOCK32_ALL: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_32)],
        Recipe.DYNAMIC_INT4_BLOCK128_ALL: [(".*", ops.ALL_SUPPORTED, 4, granularity.BLOCKWISE_128)],
        Recipe.INT4_QAT: [(".*", ops.ALL_SUPPORTED, 4, granularity.CHANNELWISE)],
    }
    manager = recipe_manager.RecipeManager()
    for regex, operation, bits, gran in plan[recipe]:
        manager.add_dynamic_config(regex=regex, operation_name=operation, num_bits=bits, granularity=gran)
    return manager.get_quantization_recipe()


def embedding_storage(recipe: Recipe) -> EmbeddingStorage:
    """How `recipe` stores the tied embedding table (the table above): what the GPU layout must fit per buffer."""
    return {
        Recipe.FP32: EmbeddingStorage(bits=32),
        Recipe.DYNAMIC_INT4_BLOCK32_ALL: EmbeddingStorage(bits=4, block=32),
        Recipe.DYNAMIC_INT4_BLOCK128_ALL: EmbeddingStorage(bits=4, block=128),
        Recipe.INT4_QAT: EmbeddingStorage(bits=4),
    }.get(recipe, EmbeddingStorage(bits=8))


def quantize_tflite(float_model: Path, recipe: Recipe, destination: Path) -> Path:
    """Write the `recipe`-quantized copy of `float_model` to `destination` (atomically).

    The quantizer writes through a memory map; `mmap_guard` makes a full disk an OSError there instead of SIGBUS.
    """
    from ai_edge_quantizer import quantizer

    from sdk_build import mmap_guard

    mmap_guard.install()
    plan = build_recipe(recipe)
    with atomic_path(destination) as tmp:
        if plan is None:
            shutil.copyfile(float_model, tmp)
        else:
            engine = quantizer.Quantizer(str(float_model))
            engine.load_quantization_recipe(plan)
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a size summary per call
                result = engine.quantize()
            tmp.unlink()
            result.export_model(str(tmp), overwrite=True)
    return destination
