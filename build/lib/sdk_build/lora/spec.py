"""How a build applies a LoRA adapter: the one typed choice the CLI flags, the matrix and the tests produce."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

from sdk_build.spec import parse_enum


class LoraMode(str, enum.Enum):
    FUSED = "fused"
    """W + scale * B @ A merged into the weights before conversion: one plain bundle, exactly the base's cost."""
    RUNTIME = "runtime"
    """The bundle gets extra LoRA signatures (litert-torch `lora_ranks`); the adapter ships as its own file."""


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    path: Path
    mode: LoraMode = LoraMode.FUSED


def make_lora_spec(path: str | Path, mode: str = LoraMode.FUSED.value) -> LoraSpec:
    """A LoraSpec from plain strings (CLI flags), naming the valid modes when `mode` is not one."""
    return LoraSpec(Path(path).expanduser(), parse_enum(LoraMode, mode, "LoRA mode"))  # type: ignore[arg-type]
