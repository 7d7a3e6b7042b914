"""The build a user asks for: the plain pipeline, or the pipeline with a LoRA adapter composed around it.

LoRA sits above the pipeline (`sdk_build.lora.build` calls `sdk_build.pipeline.build` with a fused checkpoint or
LoRA-input export options and records the adapter); the pipeline itself knows nothing of adapters. The CLI, the
matrix and benchmarks call `build` here; code that never has an adapter may call `sdk_build.pipeline.build`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sdk_build.artifacts.manifest import EntryFields
from sdk_build.pipeline import DEFAULT_OUTPUT, BuildOutcome
from sdk_build.pipeline import build as build_plain

if TYPE_CHECKING:
    from sdk_build.convert.export import ExportOptions
    from sdk_build.lora.spec import LoraSpec
    from sdk_build.sources import Checkpoint
    from sdk_build.spec import VariantSpec


def build(
    checkpoint_ref: str,
    variant: VariantSpec,
    output_dir: Path = DEFAULT_OUTPUT,
    *,
    cache_dir: Path | None = None,
    allow_custom_shape: bool = False,
    force: bool = False,
    export_options: ExportOptions | None = None,
    checkpoint: Checkpoint | None = None,
    lora: LoraSpec | None = None,
    fields: EntryFields | None = None,
) -> BuildOutcome:
    """`sdk_build.pipeline.build`, with `lora` (a PEFT adapter, fused or for runtime loading) applied when given;
    `fields` go into each manifest entry as it is written (`sdk_build.artifacts.manifest.EntryFields`)."""
    common = {"cache_dir": cache_dir, "allow_custom_shape": allow_custom_shape, "force": force,
              "export_options": export_options, "checkpoint": checkpoint}
    if lora is None:
        return build_plain(checkpoint_ref, variant, output_dir, fields=fields, **common)
    from sdk_build.lora.build import build_with_lora

    return build_with_lora(checkpoint_ref, variant, output_dir, lora, fields=fields, **common)
