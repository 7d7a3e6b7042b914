"""The build plan: a TOML file (targets -> variants) read into typed specs, planned and built.

One format for every set: the demo set (`matrices/demo.toml`, one target) and Google's 1B set
(`matrices/gemma3_1b.toml`) are both plans; `--matrix NAME` names a shipped one, `--matrix PATH` any file.

The plan groups variants by float export (ekv, prefill set): each group exports once, then quantizes per recipe.
Identical variants listed under several targets (Google ships one file for Android CPU, GPU and iOS) are built
once. `--jobs N` runs N export groups at once only when N float exports fit in the memory available now.
"""

from __future__ import annotations

import dataclasses
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk_build.architecture import ModelShape
from sdk_build.errors import BuildError, SpecError
from sdk_build.spec import Target, VariantSpec, make_variant, parse_enum

if TYPE_CHECKING:
    from sdk_build.artifacts.manifest import EntryFields
    from sdk_build.convert.export import ExportOptions
    from sdk_build.lora.spec import LoraSpec
    from sdk_build.sources import Checkpoint

PLANS_DIR = Path(__file__).with_name("matrices")
DEFAULT_MATRIX = PLANS_DIR / "gemma3_1b.toml"
DEMO_PLAN = PLANS_DIR / "demo.toml"
VARIANT_KEYS = frozenset({"recipe", "ekv", "prefill_lengths", "formats", "output_name"})


def shipped_plans() -> list[str]:
    return sorted(path.stem for path in PLANS_DIR.glob("*.toml"))


def plan_path(value: str | Path) -> Path:
    """A plan file's path, or the name of a shipped plan (`demo`, `gemma3_1b`)."""
    path = Path(value)
    if path.is_file():
        return path
    if path.suffix == "" and (PLANS_DIR / f"{value}.toml").is_file():
        return PLANS_DIR / f"{value}.toml"
    raise SpecError(f"{value} is neither a plan file nor a shipped plan (shipped: {', '.join(shipped_plans())})")


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"{path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from exc


def variant_from_table(item: dict[str, Any], where: str, *, target: str,
                       prefill_lengths: list[int] | None = None) -> VariantSpec:
    """One `{recipe = ..., ekv = ...}` table of a target -> VariantSpec."""
    unknown = set(item) - VARIANT_KEYS
    if unknown:
        raise SpecError(f"{where} has unknown keys {sorted(unknown)} (known: {', '.join(sorted(VARIANT_KEYS))})")
    if "recipe" not in item or "ekv" not in item:
        raise SpecError(f"{where} needs at least 'recipe' and 'ekv'")
    return make_variant(**{"prefill_lengths": prefill_lengths, **item, "target": target})


@dataclasses.dataclass(frozen=True)
class PlannedVariant:
    spec: VariantSpec
    targets: tuple[Target, ...]

    @property
    def fields(self) -> EntryFields:
        """What the plan records in the variant's manifest entries: every target that uses the file."""
        from sdk_build.artifacts.manifest import EntryFields

        return EntryFields(targets=tuple(t.value for t in self.targets))


@dataclasses.dataclass(frozen=True)
class Matrix:
    checkpoint: str
    targets: dict[Target, tuple[VariantSpec, ...]]
    descriptions: dict[Target, str]
    published_mib: dict[str, float] = dataclasses.field(default_factory=dict)
    """Sizes of the files the matrix reproduces, as their publisher lists them (by output file name)."""

    def size_difference(self, file: str, size_bytes: int) -> float | None:
        """(built - published) / published for a file with a published size, else None."""
        published = self.published_mib.get(file)
        return None if not published else size_bytes / 2**20 / published - 1

    def plan(self, only: tuple[Target, ...] | None = None) -> list[PlannedVariant]:
        """Unique variants (first target decides the spec's target), in file order."""
        merged: dict[tuple, PlannedVariant] = {}
        for target, variants in self.targets.items():
            if only and target not in only:
                continue
            for spec in variants:
                key = (spec.recipe, spec.ekv, spec.prefill_lengths, spec.formats, spec.output_name,
                       dataclasses.replace(spec, target=target).buffer_limit)
                if key in merged:
                    merged[key] = dataclasses.replace(merged[key], targets=merged[key].targets + (target,))
                else:
                    merged[key] = PlannedVariant(dataclasses.replace(spec, target=target), (target,))
        return list(merged.values())


def load_matrix(path: str | Path | None = None) -> Matrix:
    """The plan at `path` (a file or a shipped plan's name; default Google's 1B set)."""
    path = plan_path(path) if path else DEFAULT_MATRIX
    data = read_toml(path)
    prefill = data.get("default_prefill_lengths")
    targets: dict[Target, tuple[VariantSpec, ...]] = {}
    descriptions: dict[Target, str] = {}
    for name, table in (data.get("targets") or {}).items():
        target = parse_enum(Target, name, "target")
        variants = [
            variant_from_table(item, f"{path}: {name} variant {index + 1}", target=name, prefill_lengths=prefill)
            for index, item in enumerate(table.get("variants", []))
        ]
        targets[target] = tuple(variants)  # type: ignore[index]
        descriptions[target] = table.get("description", "")  # type: ignore[index]
    if not targets:
        raise SpecError(f"{path} defines no [targets.*] tables")
    published = data.get("published_mib") or {}
    if not isinstance(published, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in published.values()
    ):
        raise SpecError(f"{path}: [published_mib] must map output file names to sizes in MiB (positive numbers)")
    return Matrix(data.get("checkpoint", "embedded:gemma3-270m"), targets, descriptions,  # type: ignore[arg-type]
                  {str(k): float(v) for k, v in published.items()})


def estimated_export_bytes(shape: ModelShape, prefill_count: int, lightweight_conversion: bool = True) -> int:
    """Peak RSS of one float export, with a margin. Calibrated on this machine (`python -m bench.export_conversion`):
    - lightweight conversion (the default): 1B, 4 prefill signatures: 5.8 GB; 270M, 2 signatures: 4.3 GB. About
      4 GB of libraries and graph plus 0.6x the fp32 weights; the signature count hardly matters;
    - litert-torch's default conversion: 1B with 4 signatures 14.8-15.6 GB (3.7x its fp32 weights), 270M with 3
      at 6.4 GB; each signature adds about a quarter of the weights."""
    weights = shape.parameter_count * 4
    if lightweight_conversion:
        return int(4e9 + 0.6 * weights)
    return int(weights * (2.7 + 0.25 * prefill_count))


def check_parallelism(jobs: int, shape: ModelShape, plan: list[PlannedVariant], available: int) -> None:
    """Refuse `jobs` concurrent exports that would not fit in `available` bytes."""
    if jobs <= 1:
        return
    groups = {p.spec.export_key for p in plan}
    concurrent_groups = min(jobs, len(groups))
    need = sum(sorted((estimated_export_bytes(shape, len(k[1])) for k in groups), reverse=True)[:concurrent_groups])
    if need > available:
        fit = max(1, int(available // max(estimated_export_bytes(shape, len(k[1])) for k in groups)))
        raise BuildError(
            f"--jobs {jobs} would run {concurrent_groups} float exports at once, about {need / 2**30:.1f} GiB, but "
            f"only {available / 2**30:.1f} GiB is available; use --jobs {fit}"
        )


@dataclasses.dataclass
class VariantOutcome:
    planned: PlannedVariant
    files: list[str]
    skipped: bool
    seconds: float
    peak_rss_bytes: int
    bytes: list[int]
    error: str = ""
    node: str = ""
    """Where it was built: empty for the local executor; `host (ip, node id)` with `--executor ray`."""
    node_id: str = ""
    export_node_id: str = ""
    """The Ray node that made the float export, when this run made it (empty: local, or already cached)."""
    output_dir: Path | None = None


def estimated_quantize_bytes(shape: ModelShape) -> int:
    """Peak RSS of quantizing and bundling one variant from its float export, with a margin: measured 5.0 GB for
    the fp32 1B (docs/benchmarks.md), about 1 GB plus the fp32 weights. What a Ray bundle task declares."""
    return int(1.5e9 + 1.0 * shape.parameter_count * 4)


@dataclasses.dataclass(frozen=True)
class MatrixJob:
    """One checkpoint's planned matrix into one output folder: the unit an executor (sdk_build/executors) runs.
    Several checkpoints in one command are several jobs run together, so their exports share the workers."""

    checkpoint_ref: str
    checkpoint: Checkpoint
    output_dir: Path
    groups: tuple[tuple[PlannedVariant, ...], ...]
    cache_dir: Path | None = None
    lora: LoraSpec | None = None
    window_kv_cache: bool | None = None

    @property
    def plan(self) -> list[PlannedVariant]:
        return [planned for group in self.groups for planned in group]

    def export_options(self, planned: PlannedVariant) -> ExportOptions | None:
        """The options `build` is given for `planned`; None lets a LoRA build choose its own."""
        from sdk_build.artifacts.runtime_memory import window_kv_cache_default
        from sdk_build.convert.export import ExportOptions

        if self.lora is not None and self.window_kv_cache is None:
            return None
        window = (window_kv_cache_default(planned.targets, self.checkpoint.shape, planned.spec.ekv,
                                          planned.spec.prefill_lengths)
                  if self.window_kv_cache is None else self.window_kv_cache)
        return ExportOptions(window_kv_cache=window)


def plan_job(
    checkpoint_ref: str,
    matrix: Matrix,
    output_dir: Path,
    *,
    only: tuple[Target, ...] | None = None,
    cache_dir: Path | None = None,
    allow_custom_shape: bool = False,
    lora: LoraSpec | None = None,
    window_kv_cache: bool | None = None,
) -> MatrixJob:
    """Resolve the checkpoint and group the matrix's variants by float export."""
    from sdk_build.sources import resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint_ref, cache_dir, allow_custom_shape=allow_custom_shape)
    plan = matrix.plan(only)
    if not plan:
        raise SpecError("no variants selected: check --targets against the matrix file")
    groups: dict[tuple, list[PlannedVariant]] = {}
    for planned in plan:
        groups.setdefault(planned.spec.export_key, []).append(planned)
    return MatrixJob(checkpoint_ref, checkpoint, Path(output_dir), tuple(tuple(g) for g in groups.values()),
                     cache_dir, lora, window_kv_cache)


def variant_label(planned: PlannedVariant) -> str:
    return f"{planned.spec.recipe.value} ekv{planned.spec.ekv} ({', '.join(t.value for t in planned.targets)})"


def build_planned(job: MatrixJob, planned: PlannedVariant) -> VariantOutcome:
    """Build one planned variant in this process (the local executor's unit of work); a BuildError becomes the
    outcome's `error` so one failed variant does not stop the matrix."""
    from sdk_build.compose import build

    started = time.monotonic()
    try:
        outcome = build(job.checkpoint_ref, planned.spec, job.output_dir, cache_dir=job.cache_dir,
                        checkpoint=job.checkpoint, lora=job.lora, export_options=job.export_options(planned),
                        fields=planned.fields)
        return VariantOutcome(
            planned, [e.file for e in outcome.entries], outcome.skipped, time.monotonic() - started,
            max(e.peak_rss_bytes for e in outcome.entries), [e.bytes for e in outcome.entries],
            output_dir=job.output_dir)
    except BuildError as exc:
        return VariantOutcome(planned, [], False, time.monotonic() - started, 0, [], str(exc),
                              output_dir=job.output_dir)
