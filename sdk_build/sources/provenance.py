"""What a checkpoint was before gemma-edge read it: its file format and its own quantization.

Every source is turned into fp32 Hugging Face safetensors before export, so the bundle cannot tell a Q4_K_M GGUF
from the float model it was made from. The manifest and catalog record the difference, because a bundle built
from an already-quantized checkpoint carries two quantization errors (the source's and the recipe's), and its
verification measures only the second: the reference is the dequantized source, not the original float model.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
"""Tensor types that are floating point, not quantized (GGUF's names; safetensors dtypes map onto them)."""


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    format: str
    """"safetensors" (a Hugging Face folder), "gguf", "mlx" or "random"."""
    quantization: str
    """The source's own weights: "BF16", "F32", GGUF file types such as "Q4_K_M", MLX's "4bit-g64"."""
    quantized: bool
    """Whether the source's weights are integers + scales (re-quantizing them compounds the error)."""
    tensor_types: tuple[tuple[str, int], ...] = ()
    """How many weight tensors of each stored type, most common first (GGUF files mix types)."""

    def describe(self) -> str:
        """One phrase for messages: "Q4_K_M GGUF", "4bit-g64 MLX", "BF16 safetensors"."""
        name = {"gguf": "GGUF", "mlx": "MLX", "safetensors": "safetensors", "random": "random"}.get(self.format,
                                                                                                  self.format)
        return f"{self.quantization} {name}"

    def manifest_fields(self) -> dict[str, str]:
        """The keys added to a manifest entry's `checkpoint` record."""
        return {"format": self.format, "quantization": self.quantization}


RECORD_NAME = "source.json"
"""Written beside a converted checkpoint: its provenance, so a later build need not open the source again (gguf-py
takes tens of seconds to parse a Gemma GGUF's 262k-token vocabulary)."""


def write_record(directory: Path, source: SourceInfo, instruction_tuned: bool) -> None:
    from sdk_build.system.atomic import atomic_write_json

    atomic_write_json(Path(directory) / RECORD_NAME,
                      {**dataclasses.asdict(source), "instruction_tuned": instruction_tuned})


def read_record(directory: Path) -> tuple[SourceInfo, bool] | None:
    """(provenance, instruction-tuned) recorded in a converted checkpoint folder; None when there is none."""
    path = Path(directory) / RECORD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        source = SourceInfo(str(data["format"]), str(data["quantization"]), bool(data["quantized"]),
                            tuple((str(t), int(n)) for t, n in data.get("tensor_types", ())))
        return source, bool(data["instruction_tuned"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: the caller reads the source again and rewrites it


SAFETENSORS_F32 = SourceInfo("safetensors", "F32", quantized=False)
RANDOM = SourceInfo("random", "F32", quantized=False)


def count_types(types: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple(Counter(types).most_common())


def requantization_warning(source: SourceInfo, recipe: str) -> str | None:
    """The one-time warning for building `recipe` from an already-quantized source; None when there is none."""
    if not source.quantized or recipe == "fp32":
        return None
    return (
        f"source is {source.describe()}: {recipe} on top of it loses more than from the float weights (both "
        f"quantization errors add up); verify compares the bundle with the dequantized {source.quantization} "
        "weights, not with the original float model"
    )


def reference_description(source: SourceInfo) -> str:
    """What `verify`'s fp32 reference model is made of."""
    if source.format == "random":
        return "fp32 model with the same random weights"
    if source.quantized:
        return f"fp32 model from the dequantized {source.describe()} weights"
    return f"fp32 model from the {source.describe()} weights"


_warned: set[str] = set()


def warn_requantization_once(checkpoint, recipe: str) -> None:  # checkpoint: sdk_build.sources.Checkpoint
    """Print `requantization_warning` the first time this process builds from `checkpoint` (a matrix builds many
    variants from one source: one warning is enough)."""
    message = requantization_warning(checkpoint.source, recipe)
    if message is None or checkpoint.fingerprint in _warned:
        return
    _warned.add(checkpoint.fingerprint)
    from sdk_build.system.progress import console

    console.print(f"[yellow]warning:[/] {message}", highlight=False)
