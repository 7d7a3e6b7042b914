"""The bundle catalog: what an Android, iOS or web app reads to choose, download and verify a bundle.

`manifest.json` is the build tool's record (tool versions, build seconds, peak RSS, local paths). The catalog is
the public face of the same folder: per bundle its URL, size, sha256, targets and backends, quantization, KV cache
size, prefill lengths, format, precision needs, the memory it needs at run time and on the device, and the chat
template and stop tokens. Its JSON Schema ships in `sdk_build/artifacts/schemas/catalog-v1.schema.json`.

**URLs.** Every `url` is a URI reference resolved against the URL the catalog itself was fetched from (RFC 3986
section 5: `new URL(url, catalogUrl)` in JavaScript, `URI(catalogUrl).resolve(url)` on the JVM, `urljoin` in
Python). `catalog.json` written next to the bundles carries bare file names, so the folder can be copied to any
static host (a CDN, GitHub Releases, a Hugging Face repository) unchanged; the web demo's `/api/catalog` carries
server-relative paths (`/bundles/<file>`), which stay right behind any host name, port or proxy.

**Versioning.** `"schema": "gemma-edge.catalog/1"`. Adding optional fields keeps version 1; removing or renaming
a field, or changing what one means, makes version 2 with a new schema file. Readers refuse a major version they
do not know (`parse_catalog` does, naming the version it found).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sdk_build.architecture import KNOWN_SHAPES, ModelShape
from sdk_build.artifacts.file_names import is_plain_file_name, plain_name_problem
from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.artifacts.runtime_memory import HEADROOM_FACTOR, KV_CACHE_DTYPE, estimate
from sdk_build.convert.kv_cache import kv_layout
from sdk_build.errors import CatalogError, file_system_errors
from sdk_build.spec import Recipe, Target
from sdk_build.system.atomic import atomic_write_json

CATALOG_NAME = "catalog.json"
SCHEMA = "gemma-edge.catalog/1"
SCHEMA_PREFIX = "gemma-edge.catalog/"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "catalog-v1.schema.json"


@dataclasses.dataclass(frozen=True)
class TargetInfo:
    platform: str
    backends: tuple[str, ...]


TARGETS: dict[str, TargetInfo] = {
    Target.ANDROID_CPU.value: TargetInfo("android", ("cpu",)),
    Target.ANDROID_GPU.value: TargetInfo("android", ("gpu",)),
    # MediaPipe's iOS LLM Inference API and LiteRT-LM on iOS load the same .task files as Android, on either backend.
    Target.IOS.value: TargetInfo("ios", ("cpu", "gpu")),
    Target.WEB_GPU.value: TargetInfo("web", ("gpu",)),
}

# (transformer weights, granularity, embedding) per recipe; the same table as sdk_build/convert/quantize.py's docstring.
QUANTIZATION: dict[str, tuple[str, str, str]] = {
    Recipe.FP32.value: ("float32", "none", "float32"),
    Recipe.DYNAMIC_INT8.value: ("int8", "per-channel", "int8"),
    Recipe.DYNAMIC_INT4_BLOCK32.value: ("int4", "block-32", "int8"),
    Recipe.DYNAMIC_INT4_BLOCK128.value: ("int4", "block-128", "int8"),
    Recipe.DYNAMIC_INT4_BLOCK32_ALL.value: ("int4", "block-32", "int4"),
    Recipe.DYNAMIC_INT4_BLOCK128_ALL.value: ("int4", "block-128", "int4"),
    Recipe.INT4_QAT.value: ("int4", "per-channel", "int4"),
    # the algorithm recipes (issue 21): the algorithm changes the integers, not the layout; `recipe` names it
    **{r.value: ("int4", "per-channel", "int8") for r in Recipe if r.value.startswith("dynamic_int4_channel")},
    **{r.value: ("int4", "block-32", "int4" if r.octav_embedding else "int8") for r in Recipe
       if r.value.startswith("dynamic_int4_block32_") and not r.value.endswith("_all")},
}

# What the browser needs for a web bundle (docs/web_demo.md, "Precision"): F16 runs where the adapter has `shader-f16`; without
# it F16 yields invalid tokens, so pages must load with MediaPipe's `forceF32: true`, which always works (slower).
WEB_PRECISION = {
    "shader_f16": "optional",
    "f32_fallback": True,
    "without_shader_f16": "load with forceF32: true (F16 on such adapters produces invalid tokens)",
}

# Which runtimes read a format: LiteRT-LM also runs legacy .task files; MediaPipe's web runtime refuses .litertlm,
# which LiteRT-LM's own web runtime (@litert-lm/core) runs.
RUNTIMES = {"task": ["mediapipe-llm-inference", "litert-lm"], "litertlm": ["litert-lm"]}


def _gpu_needs(entry: BundleEntry) -> dict[str, Any]:
    """What a GPU runtime must offer (`precision.gpu`), from what the build recorded: the largest single buffer
    (compare with WebGPU's `maxStorageBufferBindingSize`), the layout's limit, and whether the model was made safe
    for F16 (`sdk_build/gpu/f16.py`). Absent for bundles built before these were recorded."""
    extra = entry.extra or {}
    largest = extra.get("largest_tensors") or []
    if not largest:
        return {}
    return {"gpu": {
        "max_buffer_bytes": max(int(t["bytes"]) for t in largest),
        "buffer_limit": extra.get("gpu_buffer_limit"),
        "f16_safe": "residual_scale" in extra,
        "residual_scale": extra.get("residual_scale"),
    }}


def model_shape(entry: BundleEntry) -> ModelShape:
    """The shape the bundle was exported from: recorded by the build, else the known shape of its model name."""
    recorded = entry.extra.get("model_shape")
    if isinstance(recorded, dict):
        try:
            return ModelShape(**recorded)
        except TypeError as exc:
            raise CatalogError(f"manifest entry {entry.file}: extra.model_shape is malformed ({exc})") from exc
    if entry.model in KNOWN_SHAPES:
        return KNOWN_SHAPES[entry.model]
    raise CatalogError(
        f"cannot estimate the memory {entry.file} needs: its model {entry.model!r} has no known shape and the "
        "manifest entry does not record one (extra.model_shape); rebuild it with this version of sdk-build"
    )


def window_kv_cache(entry: BundleEntry) -> bool:
    """Whether the bundle was exported with window-sized local KV caches (manifests before the option: no)."""
    options = entry.extra.get("export_options")
    return bool(options.get("window_kv_cache")) if isinstance(options, dict) else False


def _public_checkpoint(ref: str) -> str:
    """Reference names are public (embedded:, random:, hf:, modelscope:); a local folder or file is reduced to its
    name."""
    if ref.split(":", 1)[0] in {"embedded", "random", "hf", "modelscope"}:
        return ref
    return "local:" + Path(ref).name


def _targets(entry: BundleEntry) -> list[str]:
    listed = entry.extra.get("targets")
    targets = [str(t) for t in listed] if isinstance(listed, list) and listed else [entry.target]
    return list(dict.fromkeys(targets))


def _single_turn(template: dict[str, str]) -> str:
    return (
        template.get("user_prefix", "")
        + "{prompt}"
        + template.get("user_suffix", "")
        + template.get("model_prefix", "")
    )


def _int8_projections(recipe: str) -> tuple[str, ...]:
    """The projections a mixed recipe keeps at int8 (`Recipe.int8_projections`); none for recipes this build does
    not know (a newer manifest)."""
    try:
        return Recipe(recipe).int8_projections
    except ValueError:
        return ()


def catalog_entry(entry: BundleEntry, url: str) -> dict[str, Any]:
    """One bundle of the catalog, derived from its manifest entry."""
    if not is_plain_file_name(entry.file):
        raise CatalogError(f"manifest entry {entry.file!r} is not a plain file name; fix the manifest")
    shape = model_shape(entry)
    targets = _targets(entry)
    infos = [TARGETS[t] for t in targets if t in TARGETS]
    weights, granularity, embedding = QUANTIZATION.get(entry.quantization, ("unknown", "unknown", "unknown"))
    backends = sorted({b for i in infos for b in i.backends}) or ["cpu"]
    layout = kv_layout(shape, entry.ekv, window_kv_cache(entry))
    int8_projections = _int8_projections(entry.quantization)
    memory = estimate(shape, entry.bytes, entry.ekv, entry.prefill_lengths, layout, (weights, granularity, embedding),
                      backends, int8_projections)
    bundle: dict[str, Any] = {
        "file": entry.file,
        "url": url,
        "bytes": entry.bytes,
        "sha256": entry.sha256.lower(),
        "format": entry.format,
        "runtimes": RUNTIMES.get(entry.format, []),
        "model": {
            "name": entry.model,
            "instruction_tuned": entry.instruction_tuned,
            "parameters": shape.parameter_count,
            "layers": shape.num_layers,
            "kv_heads": shape.num_kv_heads,
            "head_dim": shape.head_dim,
            "vocab_size": shape.vocab_size,
        },
        "targets": targets,
        "platforms": sorted({i.platform for i in infos}),
        "backends": sorted({b for i in infos for b in i.backends}),
        "quantization": {
            "recipe": entry.quantization,
            "weights": weights,
            "granularity": granularity,
            "embedding": embedding,
            **({"int8_projections": list(int8_projections)} if int8_projections else {}),
            "activations": "float32",
        },
        "ekv": entry.ekv,
        "prefill_lengths": sorted(entry.prefill_lengths),
        "precision": {
            "weights": weights,
            "activations": "float32",
            "kv_cache": KV_CACHE_DTYPE,
            "web": dict(WEB_PRECISION) if Target.WEB_GPU.value in targets else None,
            **_gpu_needs(entry),
        },
        "memory": memory.to_dict(),
        "chat": {
            "instruction_tuned": entry.instruction_tuned,
            "start_token": entry.start_token,
            "stop_tokens": list(entry.stop_tokens),
            "prompt_template": dict(entry.prompt_template),
            "single_turn": _single_turn(entry.prompt_template),
            "template_in_bundle": True,
        },
        "source": {
            "checkpoint": _public_checkpoint(entry.checkpoint.get("ref", "")),
            "checkpoint_fingerprint": entry.checkpoint.get("fingerprint", ""),
            **{f"checkpoint_{key}": entry.checkpoint[key] for key in ("format", "quantization") if key in entry.checkpoint},
            "created_utc": entry.created_utc,
            "tool_versions": dict(entry.tool_versions),
            "reproducible": entry.reproducible,
        },
    }
    lora = getattr(entry, "lora", None)  # LoRA builds: say how, without the builder's paths
    if isinstance(lora, dict):
        bundle["lora"] = {"mode": lora.get("mode"), "rank": lora.get("rank")}
    return bundle


def build_catalog(
    entries: Iterable[BundleEntry], url_for: Callable[[BundleEntry], str] = lambda e: e.file
) -> dict[str, Any]:
    """The catalog document for `entries`; `url_for` gives each bundle's URL (default: its bare file name)."""
    from sdk_build.artifacts.versions import tool_versions

    return {
        "schema": SCHEMA,
        "generated_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": {"name": "gemma-edge", "version": tool_versions().get("gemma-edge", "unknown")},
        "urls": "relative to this catalog's own URL (RFC 3986 section 5)",
        "memory_model": {
            "kv_cache_dtype": KV_CACHE_DTYPE,
            "estimated_runtime": "weights (bundle bytes) + weight cache (XNNPACK's packed copy of the fully connected "
            "weights, when the CPU is among the backends) + KV cache (2 * token slots * kv_heads * head_dim * 4 bytes; "
            "token slots: ekv per layer, or the sliding window for local layers when kv_cache.window_sized_local_"
            "layers) + activations of the largest prefill signature (with window caches, plus the ring's mask and write "
            "plan: 8 float32 tensors of P x (window + P)); backends.* gives each backend's own figure "
            "(GPU: float16 KV, no XNNPACK cache)",
            "headroom_factor": HEADROOM_FACTOR,
            "min_device_memory": "estimated_runtime * headroom_factor, rounded up to a whole GiB",
        },
        "bundles": [catalog_entry(e, url_for(e)) for e in sorted(entries, key=lambda e: e.file)],
    }


def write_catalog(bundles_dir: Path, output: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Build the catalog of `bundles_dir`'s manifest and write it (atomically) to `output` or DIR/catalog.json."""
    bundles_dir = Path(bundles_dir)
    if not bundles_dir.is_dir():
        raise CatalogError(f"{bundles_dir} is not a folder; pass the folder holding the bundles and manifest.json")
    manifest = load_manifest(bundles_dir)
    if not manifest.bundles:
        raise CatalogError(f"{bundles_dir} has no manifest.json entries; build bundles into it first")
    catalog = build_catalog(manifest.bundles)
    path = Path(output) if output else bundles_dir / CATALOG_NAME
    with file_system_errors(f"cannot write {path}"):
        atomic_write_json(path, catalog)
    return path, catalog


# ---- reading: what the pull client needs from someone else's catalog ----


@dataclasses.dataclass(frozen=True)
class CatalogBundle:
    """The fields of a catalog entry a client selects and downloads by; `data` keeps the whole entry."""

    file: str
    url: str
    bytes: int
    sha256: str
    format: str
    model: str
    targets: tuple[str, ...]
    quantization: str
    ekv: int
    data: dict[str, Any]


@functools.cache
def _schema_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def schema_violation(data: Any) -> str | None:
    """Where and how `data` breaks the catalog's JSON Schema (the most relevant error), or None when it follows it."""
    from jsonschema.exceptions import best_match

    try:
        error = best_match(_schema_validator().iter_errors(data))
    except RecursionError:
        return "it is nested too deeply"
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "the document"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{where.lstrip('.')}: {message}"


def _check_download_fields(item: Any, label: str) -> None:
    """The fields a download depends on, each with its own message (the schema check then covers the rest)."""
    if not isinstance(item, dict):
        raise CatalogError(f"{label} is not an object")
    try:
        file, url, size, sha = item["file"], item["url"], item["bytes"], item["sha256"]
        item["quantization"]["recipe"], item["model"]["name"], item["targets"], item["ekv"], item["format"]
    except (KeyError, TypeError) as exc:
        raise CatalogError(f"{label} lacks {exc}") from None
    if not isinstance(file, str) or not is_plain_file_name(file):
        raise CatalogError(
            f"{label}: file {file!r} is not a plain file name ({plain_name_problem(file)}); refusing to write it"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CatalogError(f"{label} ({file}): bytes must be a non-negative integer")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)):
        raise CatalogError(f"{label} ({file}): sha256 must be 64 hex digits")
    if not isinstance(url, str) or not url:
        raise CatalogError(f"{label} ({file}): url must be a non-empty string")


def parse_catalog(data: Any, where: str) -> list[CatalogBundle]:
    """Check the fields a download depends on, then the whole document against the JSON Schema; return the bundles.

    The field checks come first so the commonest faults get their own words (an unsafe name, a bad sha256).
    """
    if not isinstance(data, dict):
        raise CatalogError(f"{where} is not a catalog (expected a JSON object)")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise CatalogError(f'{where} is not a gemma-edge catalog (no "schema": "{SCHEMA}")')
    if schema != SCHEMA:
        raise CatalogError(f"{where} is a {schema} catalog; this sdk-build reads {SCHEMA}: upgrade gemma-edge")
    bundles = data.get("bundles")
    if not isinstance(bundles, list):
        raise CatalogError(f'{where}: "bundles" must be a list')
    for index, item in enumerate(bundles):
        _check_download_fields(item, f"{where}: bundles[{index}]")
    violation = schema_violation(data)
    if violation:
        raise CatalogError(f"{where} does not follow the catalog schema (gemma-edge.catalog/1): {violation}")
    parsed = [
        CatalogBundle(
            file=item["file"],
            url=item["url"],
            bytes=item["bytes"],
            sha256=item["sha256"].lower(),
            format=item["format"],
            model=item["model"]["name"],
            targets=tuple(item["targets"]),
            quantization=item["quantization"]["recipe"],
            ekv=item["ekv"],
            data=item,
        )
        for item in bundles
    ]
    names = [b.file for b in parsed]
    if len(set(names)) != len(names):
        raise CatalogError(f"{where} lists a file twice; each bundle must appear once")
    return parsed


@dataclasses.dataclass(frozen=True)
class Selection:
    """Exact-match filters; None matches anything. `target` matches any of a bundle's targets."""

    target: str | None = None
    quantization: str | None = None
    ekv: int | None = None
    format: str | None = None
    model: str | None = None
    file: str | None = None

    def matches(self, bundle: CatalogBundle) -> bool:
        return (
            (self.target is None or self.target in bundle.targets)
            and (self.quantization is None or self.quantization == bundle.quantization)
            and (self.ekv is None or self.ekv == bundle.ekv)
            and (self.format is None or self.format == bundle.format)
            and (self.model is None or self.model == bundle.model)
            and (self.file is None or self.file == bundle.file)
        )

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v is not None) or "(everything)"


def select(bundles: Sequence[CatalogBundle], selection: Selection) -> list[CatalogBundle]:
    """The bundles matching `selection`; none is an error naming what the catalog does offer."""
    chosen = [b for b in bundles if selection.matches(b)]
    if chosen:
        return chosen
    if not bundles:
        raise CatalogError("the catalog lists no bundles")

    def values(get: Callable[[CatalogBundle], Iterable[Any]]) -> str:
        return ", ".join(str(v) for v in sorted({v for b in bundles for v in get(b)}, key=str))

    raise CatalogError(
        f"no bundle in the catalog matches {selection.describe()}; it offers targets [{values(lambda b: b.targets)}], "
        f"quantizations [{values(lambda b: [b.quantization])}], ekv [{values(lambda b: [b.ekv])}], "
        f"formats [{values(lambda b: [b.format])}]"
    )
