"""The disk space a build needs, checked before it starts, per file system.

Why up front: a build that runs out of space half way has spent minutes on the export first, and worse, the
quantizer writes its output through a memory map, where a full disk is not an error code but SIGBUS: the process
dies with no message (sdk_build/system/mmap_guard.py closes that hole; this check keeps a build from getting there).

What a build writes, by size, from the model's shape (no measurement): the fp32 float export in the cache
(4 bytes a parameter, unless already cached); then, in the work folder beside the output, the quantized model
(transformer weights and embedding at the recipe's bits, plus a block scale every 32 or 128 weights for the block
recipes) and one bundle per format (that model plus the tokenizer). Each figure gets a 15% margin and 64 MiB of
slack; folders on the same file system add up.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from sdk_build.architecture import ModelShape
from sdk_build.errors import BuildError
from sdk_build.spec import Recipe, VariantSpec

MARGIN = 1.15
SLACK_BYTES = 64 * 2**20

# (transformer weight bits, embedding bits) per recipe; block recipes carry one fp32 scale per block.
_BITS: dict[Recipe, tuple[float, float]] = {
    Recipe.FP32: (32, 32),
    Recipe.DYNAMIC_INT8: (8, 8),
    Recipe.DYNAMIC_INT4_BLOCK32: (4 + 32 / 32, 8),
    Recipe.DYNAMIC_INT4_BLOCK128: (4 + 32 / 128, 8),
    Recipe.DYNAMIC_INT4_BLOCK32_ALL: (4 + 32 / 32, 4 + 32 / 32),
    Recipe.DYNAMIC_INT4_BLOCK128_ALL: (4 + 32 / 128, 4 + 32 / 128),
    Recipe.INT4_QAT: (4, 4),
}


def float_export_bytes(shape: ModelShape) -> int:
    return shape.parameter_count * 4


def quantized_bytes(shape: ModelShape, recipe: Recipe) -> int:
    """The quantized model's size from its bits: transformer weights and the (tied) embedding."""
    weight_bits, embedding_bits = _BITS.get(recipe, (32, 32))
    embedding = shape.vocab_size * shape.hidden_size
    rest = shape.parameter_count - embedding
    return int((rest * weight_bits + embedding * embedding_bits) / 8)


@dataclasses.dataclass(frozen=True)
class SpaceNeed:
    folder: Path
    bytes: int
    what: str


def build_needs(
    shape: ModelShape, variant: VariantSpec, output_dir: Path, cache_exports: Path, *, export_cached: bool,
    tokenizer_bytes: int,
) -> list[SpaceNeed]:
    """What one build of `variant` will write where (see the module docstring)."""
    quantized = quantized_bytes(shape, variant.recipe)
    staged = quantized + len(variant.formats) * (quantized + tokenizer_bytes)
    needs = [SpaceNeed(output_dir, int(staged * MARGIN) + SLACK_BYTES, "the quantized model and its bundles")]
    if not export_cached:
        needs.append(SpaceNeed(cache_exports, int(float_export_bytes(shape) * MARGIN) + SLACK_BYTES,
                               "the float export"))
    return needs


def _existing(path: Path) -> Path:
    probe = Path(path).absolute()
    while not probe.exists():
        probe = probe.parent
    return probe


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def check_space(needs: list[SpaceNeed]) -> None:
    """Raise BuildError when a file system has less free space than the needs on it add up to."""
    by_device: dict[int, list[SpaceNeed]] = {}
    for need in needs:
        by_device.setdefault(os.stat(_existing(need.folder)).st_dev, []).append(need)
    for group in by_device.values():
        probe = _existing(group[0].folder)
        stat = os.statvfs(probe)
        free = stat.f_bavail * stat.f_frsize
        wanted = sum(n.bytes for n in group)
        if free < wanted:
            parts = ", ".join(f"{n.what} in {n.folder}" for n in group)
            raise BuildError(
                f"not enough disk space for {parts}: {_size(free)} free on that disk, about {_size(wanted)} needed; "
                "free some space or pass another --output/--cache-dir"
            )
