"""Export stage: export the float (fp32) multi-signature `.tflite` with litert-torch, once per (ekv, prefill set).

Exporting is the expensive step (1B: about 5.5 min on 2 cores and 6 GB); quantizing the float file afterwards
takes seconds. So every recipe of a (checkpoint, ekv, prefill lengths) shares one cached float export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from sdk_build.gpu.layout import split_tied_embedding
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.system.atomic import atomic_path, check_free_space, move_into_place
from sdk_build.system.leftovers import work_dir

EXPORT_FORMAT_VERSION = "1"


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """litert-torch export settings; the defaults are the ones LiteRT-LM and the web executor load."""

    mask_as_input: bool = True
    transposed_kv_cache: bool = True
    lora_ranks: tuple[int, ...] = ()
    gpu_dynamic_shapes: bool = False
    """litert-torch's GPU option: cache and prefill sizes become "magic" primes (1280 -> 1283) that a GPU delegate
    recognises as dynamic and resizes at initialisation; CPU runtimes take them as fixed sizes."""
    f16_safe: bool = False
    """Scale the residual stream by a power of two chosen from the model's own peaks (`sdk_build.gpu.f16`), so a GPU
    in half precision does not overflow; outputs are unchanged. The scale found is written beside the export
    (`export_facts`)."""
    embedding_splits: int = 1
    """Column blocks of the tied embedding / LM head table (`sdk_build.gpu.layout`): 1 is the table as one tensor;
    GPU targets cut it so that every block fits one GPU buffer. The float model computes the same function."""
    window_kv_cache: bool = False
    """Sliding-window layers get KV caches of the window (512 tokens), kept as ring buffers by the graph itself
    (`sdk_build.convert.window_cache`); global layers keep `ekv`. No effect when `ekv` is no larger than the window.
    Which targets get it by default: `sdk_build.convert.kv_cache.window_kv_cache_default`."""
    lightweight_conversion: bool = True
    """litert-torch's `lightweight_conversion`: weights enter the MLIR module as resource constants instead of
    being copied into it, and LiteRT's runtime folds what the MLIR folder then cannot. The graph, its buffers and
    its outputs are the same (bit-identical logits on the 270M); only weight tensors are named `arith.constantN`
    instead of by module path. Peak RSS and time fall (`python -m bench.export_conversion`): 1B 15.2 -> 5.9 GB and
    436 -> 306 s; 270M 6.5 -> 4.3 GB. That is what keeps a whole 1B matrix at 7.2 GB instead of 17.7 GB."""

    def __post_init__(self) -> None:
        if self.window_kv_cache and self.lora_ranks:
            from sdk_build.errors import SpecError

            raise SpecError("window KV caches are not combined with runtime LoRA inputs; build with --kv-cache full")

    def identity(self) -> dict[str, object]:
        """The settings that name an export. Options added later count only when set away from the behaviour
        before they existed, so the exports and bundle fingerprints made before them stay valid (the lightweight
        conversion's files compute the same outputs as the earlier ones)."""
        settings = dataclasses.asdict(self)
        if not self.gpu_dynamic_shapes:
            del settings["gpu_dynamic_shapes"]
        if not self.window_kv_cache:
            del settings["window_kv_cache"]
        if self.lightweight_conversion:
            del settings["lightweight_conversion"]
        if self.embedding_splits == 1:
            del settings["embedding_splits"]
        if not self.f16_safe:
            del settings["f16_safe"]
        return settings

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


def float_export_path(cache_dir: Path, checkpoint: Checkpoint, ekv: int, prefill: tuple[int, ...], options: ExportOptions) -> Path:
    prefills = "-".join(str(p) for p in sorted(prefill))
    name = f"{checkpoint.fingerprint}_ekv{ekv}_p{prefills}_{options.key()}_v{EXPORT_FORMAT_VERSION}_f32.tflite"
    return Path(cache_dir) / "exports" / name


def export_sizes(prefill_lengths: tuple[int, ...], ekv: int, options: ExportOptions) -> tuple[tuple[int, ...], int]:
    """The signature sizes written into the graph: as asked, or litert-torch's magic primes for GPU dynamic shapes."""
    if not options.gpu_dynamic_shapes:
        return tuple(prefill_lengths), ekv
    from litert_torch.generative.utilities.converter import get_magic_number_for

    return tuple(get_magic_number_for(n) for n in prefill_lengths), get_magic_number_for(ekv)


def export_float_tflite(
    checkpoint: Checkpoint,
    ekv: int,
    prefill_lengths: tuple[int, ...],
    destination: Path,
    options: ExportOptions = ExportOptions(),
) -> Path:
    """Convert `checkpoint` to an fp32 `.tflite` at `destination` (atomically). Runs in the calling process."""
    from litert_torch.generative.layers import kv_cache
    from litert_torch.generative.utilities import converter

    from sdk_build.convert.model_loader import load_torch_model

    params = checkpoint.shape.parameter_count
    check_free_space(destination.parent, int(params * 4 * 1.2))
    prefill_lengths, ekv = export_sizes(prefill_lengths, ekv, options)
    model = load_torch_model(
        checkpoint, mask_cache_size=ekv, lora_inputs=bool(options.lora_ranks), window_kv_cache=options.window_kv_cache
    )
    split_tied_embedding(model, options.embedding_splits)
    facts: dict[str, object] = {}
    if options.f16_safe:
        import sentencepiece as spm

        from sdk_build.gpu.f16 import measure_stream, scale_residual_stream

        peaks = measure_stream(model, spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path)))
        scale_residual_stream(model, peaks.scale())
        facts.update(residual_scale=peaks.scale(), stream_peak=peaks.max_abs, stream_peak_mean_square=peaks.max_mean_square)
    export_config = converter.ExportConfig(
        mask_as_input=options.mask_as_input,
        kvcache_layout=kv_cache.KV_LAYOUT_TRANSPOSED if options.transposed_kv_cache else kv_cache.KV_LAYOUT_DEFAULT,
    )
    with (
        work_dir(destination.parent, ".export-") as workdir,  # owned while it runs: sdk_build/system/leftovers.py
        _conversion_settings(lightweight_conversion=options.lightweight_conversion),
    ):
        produced = converter.convert_to_tflite(
            model,
            output_path=str(workdir),
            output_name_prefix="model",
            prefill_seq_len=sorted(prefill_lengths),
            kv_cache_max_len=ekv,
            quantize="none",
            lora_ranks=list(options.lora_ranks) or None,
            export_config=export_config,
        )
        if options.lora_ranks:
            from sdk_build.lora.signatures import promote_lora_signatures

            promote_lora_signatures(Path(produced))  # LiteRT-LM binds LoRA inputs on prefill_N/decode only
        with atomic_path(facts_path(destination)) as tmp:
            tmp.write_text(json.dumps(facts, sort_keys=True))
        move_into_place(Path(produced), destination)  # renamed from the work folder: no big temporary file outside it
    return destination


def facts_path(export: Path) -> Path:
    return export.with_name(export.name + ".json")


def export_facts(export: Path) -> dict[str, object]:
    """What the export found out about the model (the F16-safety scale); {} for exports made before it was recorded."""
    try:
        return dict(json.loads(facts_path(export).read_text()))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _conversion_settings(**settings: object) -> Iterator[None]:
    """Pass `settings` to litert-torch's `Converter.convert` for the duration of the block.

    Why a scoped patch: `convert_to_tflite` (signatures, LoRA inputs, KV layouts, naming) calls
    `Converter.convert(quant_config=...)` and exposes none of its other arguments; re-implementing it around the
    private `_add_signatures` would fork more of litert-torch than this does.
    """
    from litert_torch._convert import interface

    original = interface.Converter.convert

    def convert(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return original(self, *args, **{**kwargs, **settings})

    interface.Converter.convert = convert  # type: ignore[method-assign]
    try:
        yield
    finally:
        interface.Converter.convert = original  # type: ignore[method-assign]
