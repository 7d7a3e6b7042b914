"""`build()` with a LoRA adapter: fused into the weights, or kept separate for runtimes that load adapters.

Both modes reuse the plain pipeline unchanged and then record the adapter in the manifest:
- fused: the pipeline runs on the cached fused checkpoint (base + scale * B @ A), so the bundle is a plain bundle
  of the same size and speed as the base's; its name gets `_lora-<adapter>`, its entry `lora.mode = "fused"` with
  the adapter's fingerprint, and `checkpoint` stays the base the adapter was merged into (verify re-merges it);
- runtime: the pipeline exports the base with LoRA-input signatures (`ExportOptions.lora_ranks`), the name gets
  `_lora-r<rank>`, and the adapter is written beside it as its own file, listed in the manifest's `adapters`.
  Any adapter of that rank for that base fits the same bundle.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from sdk_build.artifacts.manifest import (
    AdapterEntry,
    EntryFields,
    sha256_file,
    update_manifest_adapter,
)
from sdk_build.artifacts.naming import bundle_stem
from sdk_build.convert.export import ExportOptions
from sdk_build.lora.adapter import LoraAdapter, load_adapter
from sdk_build.lora.spec import LoraMode, LoraSpec
from sdk_build.pipeline import BuildOutcome
from sdk_build.sources import Checkpoint, default_cache_dir, resolve_checkpoint
from sdk_build.spec import VariantSpec


@dataclasses.dataclass
class LoraBuildOutcome(BuildOutcome):
    """What the plain pipeline returned, plus the adapter file written for runtime mode."""

    adapter_file: Path | None = None


def build_with_lora(
    checkpoint_ref: str,
    variant: VariantSpec,
    output_dir: Path,
    lora: LoraSpec,
    *,
    cache_dir: Path | None = None,
    allow_custom_shape: bool = False,
    force: bool = False,
    export_options: ExportOptions | None = None,
    checkpoint: Checkpoint | None = None,
    fields: EntryFields | None = None,
) -> LoraBuildOutcome:
    """Build `variant` of `checkpoint_ref` with the PEFT adapter `lora.path` applied as `lora.mode` says; each entry
    is written once, pointing at the base checkpoint (not the fused copy) with the adapter's record."""
    from sdk_build.pipeline import build

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    output_dir = Path(output_dir)
    base = checkpoint or resolve_checkpoint(checkpoint_ref, cache, allow_custom_shape=allow_custom_shape)
    if export_options is None:  # fused weights export like the base model; runtime LoRA inputs need full caches
        from sdk_build.artifacts.runtime_memory import window_kv_cache_default

        fused_window = lora.mode is LoraMode.FUSED and window_kv_cache_default(
            (variant.target,), base.shape, variant.ekv, variant.prefill_lengths)
        export_options = ExportOptions(window_kv_cache=fused_window)
    adapter = load_adapter(lora.path, base.shape)
    stem = variant.output_name or bundle_stem(base, variant)
    if lora.mode is LoraMode.FUSED:
        from sdk_build.lora.fuse import fused_checkpoint

        fused = fused_checkpoint(base, adapter, cache)
        named = dataclasses.replace(variant, output_name=f"{stem}_lora-{adapter.name}")
        record = {"mode": LoraMode.FUSED.value, **adapter.describe(), "fused_checkpoint": fused.fingerprint}
        outcome = build(
            checkpoint_ref,
            named,
            output_dir,
            cache_dir=cache,
            force=force,
            export_options=export_options,
            checkpoint=fused,
            fields=_with_lora(fields, base, record),
        )
        return LoraBuildOutcome(outcome.entries, outcome.skipped, outcome.seconds)

    from sdk_build.lora.litert_lora import (
        check_runtime_supported,
        check_runtime_target,
        runtime_rank,
        write_adapter_file,
    )

    check_runtime_target(variant.target)
    check_runtime_supported(adapter, base.shape)
    rank = runtime_rank(adapter.rank)
    named = dataclasses.replace(variant, output_name=f"{stem}_lora-r{rank}")
    options = dataclasses.replace(export_options, lora_ranks=(rank,))
    outcome = build(
        checkpoint_ref, named, output_dir, cache_dir=cache, force=force, export_options=options, checkpoint=base,
        fields=_with_lora(fields, base, {"mode": LoraMode.RUNTIME.value, "rank": rank}),
    )
    adapter_file = write_adapter_file(adapter, base.shape, output_dir / adapter_file_name(base, adapter, rank), rank)
    _record_adapter(output_dir, adapter_file, adapter, base, rank, [e.file for e in outcome.entries])
    return LoraBuildOutcome(outcome.entries, outcome.skipped, outcome.seconds, adapter_file)


def adapter_file_name(base: Checkpoint, adapter: LoraAdapter, rank: int) -> str:
    return f"{base.display_name}_{adapter.name}_lora-r{rank}.tflite"


def _with_lora(fields: EntryFields | None, base: Checkpoint, record: dict) -> EntryFields:
    """`fields` plus the `lora` record, the entry's `checkpoint` pointing at the base (not the fused copy)."""
    return dataclasses.replace(fields or EntryFields(), checkpoint={"ref": base.ref, "fingerprint": base.fingerprint}, lora=record)


def _record_adapter(
    output_dir: Path, path: Path, adapter: LoraAdapter, base: Checkpoint, rank: int, bundles: list[str]
) -> None:
    from sdk_build.artifacts.manifest import load_manifest

    previous = next((a for a in load_manifest(output_dir).adapters if a.file == path.name), None)
    fits = sorted(set(bundles) | set(previous.bundles if previous else []))
    update_manifest_adapter(
        output_dir,
        AdapterEntry(
            file=path.name,
            bytes=path.stat().st_size,
            sha256=sha256_file(path),
            rank=rank,
            lora=adapter.describe(),
            base={"ref": base.ref, "fingerprint": base.fingerprint},
            bundles=fits,
            created_utc=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
    )
