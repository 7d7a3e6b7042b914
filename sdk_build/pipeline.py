"""`build()`: checkpoint reference + variant spec -> bundles in an output folder, recorded in its manifest.

Stages: resolve the checkpoint, check everything that can be checked in seconds (sdk_build/system/preflight.py: the
folders, the tokenizer, the weights' shapes, ekv against the model, the disk space each file system needs), export
the float `.tflite` (cached per checkpoint/ekv/prefill set, in a child process so its ~6 GB for 1B is returned to
the OS and measured), quantize per recipe, bundle per format, hash, and publish: each bundle takes its final name
and its `manifest.json` entry in one step under the manifest lock (sdk_build/artifacts/manifest.py), so no reader sees one
without the other. A bundle whose manifest entry has the same spec fingerprint and whose file is whole is not
rebuilt. Bundles are reproducible (sdk_build/system/reproducible.py): the same inputs give the same bytes, and the entry
says so (`reproducible: true`).

Work happens in hidden folders that are locked while in use (`.build-*` beside the output, `.export-*` beside the
cache); a build first removes those a killed run left behind (sdk_build/system/leftovers.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sdk_build.artifacts.manifest import (
    BundleEntry,
    EntryFields,
    load_manifest,
    publish_bundle,
    record_fields,
    sha256_file,
)
from sdk_build.artifacts.naming import bundle_filename, bundle_stem
from sdk_build.artifacts.runtime_memory import window_kv_cache_default
from sdk_build.artifacts.versions import tool_versions
from sdk_build.convert.bundle import LITERTLM_LAYOUT, START_TOKEN, STOP_TOKENS, prompt_template, write_bundle
from sdk_build.convert.calibration import CalibrationSpec
from sdk_build.convert.export import ExportOptions, export_facts, float_export_path
from sdk_build.convert.kv_cache import kv_layout
from sdk_build.convert.quantize import build_recipe, embedding_storage, quantize_tflite
from sdk_build.errors import BuildError, file_system_errors
from sdk_build.gpu.buffers import tensor_sizes
from sdk_build.gpu.layout import embedding_splits
from sdk_build.sources import Checkpoint, default_cache_dir, resolve_checkpoint
from sdk_build.sources.provenance import warn_requantization_once
from sdk_build.spec import BundleFormat, VariantSpec
from sdk_build.system.disk_space import build_needs, check_space
from sdk_build.system.leftovers import remove_leftovers, work_dir
from sdk_build.system.memory import own_peak_rss_bytes, release_freed_memory
from sdk_build.system.preflight import check_build_inputs, check_writable_folder
from sdk_build.system.progress import console, status
from sdk_build.system.terminal import markup_safe

DEFAULT_OUTPUT = Path("bundles")


@dataclasses.dataclass
class BuildOutcome:
    entries: list[BundleEntry]
    skipped: bool
    seconds: float


def _remove_leftovers(folder: Path) -> None:
    for path, size in remove_leftovers(folder):
        console.print(f"removed {markup_safe(path)} ({size / 2**20:.1f} MiB), left by a build that was killed")


def spec_fingerprint(checkpoint: Checkpoint, variant: VariantSpec, fmt: BundleFormat, options: ExportOptions,
                     calibration: CalibrationSpec = CalibrationSpec()) -> str:
    data = {
        "checkpoint": checkpoint.fingerprint,
        "variant": {**variant.to_dict(), "formats": [fmt.value]},
        "export": options.identity(),
        "recipe": json.dumps(build_recipe(variant.recipe), sort_keys=True, default=str),
        "tools": tool_versions(),
        # calibrated recipes (GPTQ, OSCAR) depend on their text too; the others' fingerprints stay as they were
        **({"calibration": calibration.identity()} if variant.recipe.calibrated else {}),
    }
    if fmt is BundleFormat.LITERTLM:
        data["litertlm_layout"] = LITERTLM_LAYOUT  # what bundle.write_litertlm puts in the file besides the model
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def export_options_for(variant: VariantSpec, checkpoint: Checkpoint, options: ExportOptions) -> ExportOptions:
    """`options` with what a GPU target needs: the layout its buffer limit asks for (`sdk_build.gpu.layout`) and
    the F16-safe residual scale (`sdk_build.gpu.f16`)."""
    if variant.target.gpu:
        options = dataclasses.replace(options, f16_safe=True)
    if variant.buffer_limit:
        parts = embedding_splits(checkpoint.shape, variant.buffer_limit, embedding_storage(variant.recipe))
        options = dataclasses.replace(options, embedding_splits=parts)
    return options


def resolve_export_options(
    checkpoint: Checkpoint, variant: VariantSpec, export_options: ExportOptions | None
) -> ExportOptions:
    """The export options `build` really uses for `variant`: the target's KV-cache default when none are given,
    full caches where ekv fits in the window, and the GPU layout. A distributed matrix (sdk_build/executors) calls
    this on the driver too, so its export tasks produce exactly the float export `build` then finds in the cache."""
    if export_options is None:
        export_options = ExportOptions(window_kv_cache=window_kv_cache_default(
            (variant.target,), checkpoint.shape, variant.ekv, variant.prefill_lengths))
    if export_options.window_kv_cache and not kv_layout(checkpoint.shape, variant.ekv, True).window_kv_cache:
        # ekv within the window: no layer to shrink, so the same export (and cache key) as full caches
        export_options = dataclasses.replace(export_options, window_kv_cache=False)
    return export_options_for(variant, checkpoint, export_options)


def wanted_bundles(
    checkpoint: Checkpoint, variant: VariantSpec, export_options: ExportOptions,
    calibration: CalibrationSpec | None = None,
) -> dict[BundleFormat, tuple[str, str]]:
    """Per format of `variant`: (bundle file name, spec fingerprint), with `export_options` already resolved
    (`resolve_export_options`). What decides whether a published bundle is up to date."""
    calibration = calibration or CalibrationSpec()
    return {
        fmt: (bundle_filename(checkpoint, variant, fmt), spec_fingerprint(checkpoint, variant, fmt, export_options, calibration))
        for fmt in variant.formats
    }


def is_up_to_date(output_dir: Path, entry: BundleEntry | None, fingerprint: str) -> bool:
    if entry is None or entry.spec_fingerprint != fingerprint:
        return False
    path = Path(output_dir) / entry.file
    return path.is_file() and path.stat().st_size == entry.bytes


_EXIT_HINTS = {
    -9: " (killed: out of memory? see README 'Memory')",
    137: " (killed: out of memory? see README 'Memory')",
    -7: " (bus error: did the disk fill up while it wrote? free space in the cache folder)",
}


def ensure_float_export(
    checkpoint: Checkpoint, variant: VariantSpec, cache_dir: Path, options: ExportOptions
) -> tuple[Path, int]:
    """The cached float export for the variant's (ekv, prefill set); exported in a child process if missing."""
    path = float_export_path(cache_dir, checkpoint, variant.ekv, variant.prefill_lengths, options)
    if path.exists():
        return path, 0
    path.parent.mkdir(parents=True, exist_ok=True)
    label = f"export fp32 tflite (ekv {variant.ekv}, prefill {list(variant.prefill_lengths)})"
    with status(label), tempfile.TemporaryDirectory(prefix="gemma-edge-export-") as workdir:
        request, result = Path(workdir) / "request.pkl", Path(workdir) / "result.json"
        request.write_bytes(pickle.dumps({
            "checkpoint": checkpoint, "ekv": variant.ekv, "prefill": variant.prefill_lengths, "path": path,
            "options": options, "result": result,
        }))
        log = Path(workdir) / "export.log"
        with open(log, "w") as log_handle:
            code = subprocess.call(
                [sys.executable, "-m", "sdk_build.convert.export_worker", str(request)], stdout=log_handle, stderr=subprocess.STDOUT
            )
        if code != 0 or not result.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            hint = _EXIT_HINTS.get(code, "")
            raise BuildError(f"the litert-torch export failed with exit code {code}{hint}; its last lines:", details=tail)
        return path, int(json.loads(result.read_text())["peak_rss_bytes"])


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
    calibration: CalibrationSpec = CalibrationSpec(),
    fields: EntryFields | None = None,
) -> BuildOutcome:
    """Build every format of `variant` from `checkpoint_ref` into `output_dir`; return the manifest entries.

    Each entry is written once, with `fields` (targets, LoRA record) from the callers above; an up-to-date bundle
    whose entry lacks them gets them here, the file untouched.

    LoRA adapters are composed around this (`sdk_build.compose.build`, `sdk_build.lora.build`). Without
    `export_options`, the variant's target decides whether local layers get window-sized KV caches
    (`sdk_build.artifacts.runtime_memory.window_kv_cache_default`). `calibration` is the
    text calibrated recipes (GPTQ, OSCAR) run through the float model (`sdk_build.convert.calibration`).
    """
    started = time.monotonic()
    fields = fields or EntryFields()
    output_dir = Path(output_dir)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    checkpoint = checkpoint or resolve_checkpoint(checkpoint_ref, cache, allow_custom_shape=allow_custom_shape)
    export_options = resolve_export_options(checkpoint, variant, export_options)
    warn_requantization_once(checkpoint, variant.recipe.value)
    check_writable_folder(output_dir, "--output")
    _remove_leftovers(output_dir)
    manifest = load_manifest(output_dir)
    wanted = wanted_bundles(checkpoint, variant, export_options, calibration)
    if not force and all(is_up_to_date(output_dir, manifest.find(n), fp) for n, fp in wanted.values()):
        entries = [e for e in (manifest.find(name) for name, _ in wanted.values()) if e]
        record_fields(output_dir, entries, fields)
        console.print(f"[green]up to date[/] {markup_safe(', '.join(n for n, _ in wanted.values()))}")
        return BuildOutcome(entries, skipped=True, seconds=time.monotonic() - started)

    check_build_inputs(checkpoint, variant)
    export_path = float_export_path(cache, checkpoint, variant.ekv, variant.prefill_lengths, export_options)
    check_writable_folder(export_path.parent, "--cache-dir")
    _remove_leftovers(export_path.parent)
    check_space(build_needs(
        checkpoint.shape, variant, output_dir, export_path.parent, export_cached=export_path.exists(),
        tokenizer_bytes=checkpoint.tokenizer_path.stat().st_size,
    ))
    float_path, export_peak = ensure_float_export(checkpoint, variant, cache, export_options)
    facts = export_facts(float_path)
    template = prompt_template(checkpoint.instruction_tuned)
    entries: list[BundleEntry] = []
    with file_system_errors(f"cannot write the bundles into {output_dir}"), work_dir(output_dir, ".build-") as workdir:
        quantized = workdir / f"{bundle_stem(checkpoint, variant)}.tflite"
        with status(f"quantize {variant.recipe.value}"):
            quantize_tflite(float_path, variant.recipe, quantized, tokenizer=checkpoint.tokenizer_path,
                            calibration=calibration)
        # what a GPU engine must fit in single buffers: `verify --backend gpu` and the lab check it against the adapter
        largest = [t.to_dict() for t in tensor_sizes(quantized.read_bytes())[:3]]
        for fmt, (name, fingerprint) in wanted.items():
            with status(f"bundle {markup_safe(name)}"):
                staged = write_bundle(
                    fmt, quantized, checkpoint.tokenizer_path, template, variant.ekv, workdir / name, fingerprint
                )
            entry = BundleEntry(
                file=name,
                bytes=staged.stat().st_size,
                sha256=sha256_file(staged),
                model=checkpoint.model,
                quantization=variant.recipe.value,
                ekv=variant.ekv,
                prefill_lengths=sorted(variant.prefill_lengths),
                target=variant.target.value,
                format=fmt.value,
                instruction_tuned=checkpoint.instruction_tuned,
                start_token=START_TOKEN,
                stop_tokens=list(STOP_TOKENS),
                prompt_template=template.to_dict(),
                checkpoint={"ref": checkpoint.ref, "fingerprint": checkpoint.fingerprint,
                            **checkpoint.source.manifest_fields()},
                spec_fingerprint=fingerprint,
                tool_versions=tool_versions(),
                build_seconds=round(time.monotonic() - started, 2),
                peak_rss_bytes=max(export_peak, own_peak_rss_bytes()),
                created_utc=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                extra={"tflite_bytes": quantized.stat().st_size, "export_options": export_options.identity(),
                       "gpu_buffer_limit": variant.buffer_limit, "largest_tensors": largest,
                       **({"calibration": calibration.identity()} if variant.recipe.calibrated else {}),
                       **({"residual_scale": facts["residual_scale"]} if "residual_scale" in facts else {}),
                       # the catalog's memory estimate needs the shape, also for custom (tiny) models
                       "model_shape": dataclasses.asdict(checkpoint.shape)},
                reproducible=True,
            )
            fields.apply(entry)
            publish_bundle(output_dir, staged, entry)
            entries.append(entry)
            console.print(f"[green]built[/] {markup_safe(name)} ({entry.bytes / 2**20:.1f} MiB)")
    release_freed_memory()  # the quantizer's buffers, before a matrix starts its next float export
    if not entries:
        raise BuildError("nothing was built")
    return BuildOutcome(entries, skipped=False, seconds=time.monotonic() - started)
