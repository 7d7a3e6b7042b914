"""The Ray executor: the driver submits one task per float export and one per quantize-and-bundle, and publishes.

Each export task declares the memory `estimated_export_bytes` gives (what `--jobs` checks locally) and each bundle
task `estimated_quantize_bytes`, one CPU each, so Ray runs as many at once as each node's memory holds and never
more; exports are spread over the nodes. A bundle task takes its export's ObjectRef as an argument, so it starts only
when that float export is in the shared cache. Tasks are retried `MAX_RETRIES` times when their worker dies (killed,
out of memory, a node lost); a BuildError is not retried (it would fail again) but fails only its own variants.

The driver checks what is up to date before submitting anything (an interrupted run resumes as with the local
executor), and publishes each finished bundle itself: rename from the shared staging folder into --output plus its
manifest entry, atomically under the manifest lock (`sdk_build.artifacts.manifest.publish_bundle`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk_build.errors import BuildError, SpecError
from sdk_build.executors.ray_tasks import KILL_ONCE_ENV, BundleResult, ExportResult, bundle_task, export_task

if TYPE_CHECKING:
    from sdk_build.matrix import MatrixJob, PlannedVariant, VariantOutcome

MAX_RETRIES = 3
CLIENT_ATTEMPTS = 2
INSTALL_HINT = "pip install 'gemma-edge[ray]'"
FORWARDED_ENV = (KILL_ONCE_ENV, "GEMMA_EDGE_QUIET")


def import_ray() -> Any:
    """Ray, imported only when asked for: it is an optional extra (a 70 MB wheel most users never need)."""
    try:
        import ray
    except ImportError:
        raise BuildError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> Any:
    """`ray`: RAY_ADDRESS, else the cluster `ray start` runs on this machine, else a new one-machine cluster;
    `ray://HOST:PORT`: a Ray client connection to that head (port 10001 by default)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    options: dict[str, Any] = {"log_to_driver": False, "runtime_env": {"env_vars": env} if env else None}
    attempts = CLIENT_ATTEMPTS if address.startswith("ray://") else 1
    failure: Exception | None = None
    for attempt in range(attempts):
        try:
            if address == "ray":
                ray.init(**options)
            else:
                ray.init(address=address, **options)
            return ray
        except ConnectionError as exc:
            failure = exc
            if attempt + 1 < attempts:
                # a loaded head can be slow to start its per-client server ("Starting Ray client server failed"):
                # seen once in the tests on 2 busy cores
                time.sleep(2.0)
    raise BuildError(
        f"cannot connect to the Ray cluster at {address}: {failure}; start it with `ray start --head` (and "
        "`ray start --address=HEAD:6379` on the other hosts), or use --executor ray alone for a cluster on this machine"
    )


def _node_memory(ray: Any) -> tuple[int, int]:
    """(alive nodes, largest `memory` resource of one node in bytes)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return len(nodes), int(max((n.get("Resources", {}).get("memory", 0) for n in nodes), default=0))


@dataclasses.dataclass
class _Pending:
    kind: str  # "export" or "bundle"
    label: str
    job: MatrixJob
    members: list[PlannedVariant]  # the variants this task's failure fails
    index: int = -1  # the bundle's position in the outcome list
    task_dir: Path | None = None


def run_ray(jobs: list[MatrixJob], address: str) -> list[VariantOutcome]:
    """Run every job on the Ray cluster at `address`; one outcome per planned variant, in plan order."""
    from sdk_build.matrix import estimated_export_bytes, estimated_quantize_bytes
    from sdk_build.system.leftovers import remove_leftovers, work_dir
    from sdk_build.system.preflight import check_writable_folder
    from sdk_build.system.progress import console
    from sdk_build.system.terminal import markup_safe

    for job in jobs:
        if job.lora is not None:
            raise SpecError("--lora with --executor ray is not supported yet: use --executor local")
    ray = connect(address)
    nodes, largest = _node_memory(ray)
    for job in jobs:
        need = max(estimated_export_bytes(job.checkpoint.shape, len(k[1])) for k in (g[0].spec.export_key
                                                                                     for g in job.groups))
        if need > largest:
            raise BuildError(f"no node of the Ray cluster ({nodes} alive) offers the {need / 2**30:.1f} GiB one float "
                             f"export of {job.checkpoint.model} needs (largest: {largest / 2**30:.1f} GiB): give the "
                             "nodes more memory (`ray start --memory BYTES`) or add a larger one")
    export_remote = ray.remote(export_task)
    bundle_remote = ray.remote(bundle_task)
    outcomes: list[VariantOutcome | None] = []
    pending: dict[Any, _Pending] = {}
    with contextlib.ExitStack() as stack:
        for job in jobs:
            check_writable_folder(job.output_dir, "--output")
            for path, size in remove_leftovers(job.output_dir):
                console.print(f"removed {markup_safe(path)} ({size / 2**20:.1f} MiB), left by a build that was killed")
            staging = stack.enter_context(work_dir(job.output_dir, ".build-ray-"))
            exports: dict[Path, Any] = {}
            for planned in job.plan:
                index = len(outcomes)
                skipped = _up_to_date_outcome(job, planned)
                outcomes.append(skipped)
                if skipped is not None:
                    continue
                options = job.export_options(planned)
                export_ref = _export_ref(job, planned, options, exports, export_remote, pending,
                                         estimated_export_bytes(job.checkpoint.shape, len(planned.spec.prefill_lengths)))
                task_dir = staging / f"task-{index}"
                ref = bundle_remote.options(
                    num_cpus=1, memory=estimated_quantize_bytes(job.checkpoint.shape), max_retries=MAX_RETRIES,
                    retry_exceptions=False, name=f"bundle {planned.spec.recipe.value} ekv{planned.spec.ekv}",
                ).remote(export_ref, job.checkpoint_ref, job.checkpoint, planned.spec, str(task_dir),
                         str(job.cache_dir) if job.cache_dir else None, options)
                pending[ref] = _Pending("bundle", _label(jobs, job, planned), job, [planned], index, task_dir)
        _drain(ray, pending, outcomes, nodes)
    return [o for o in outcomes if o is not None]


def _label(jobs: list[MatrixJob], job: MatrixJob, planned: PlannedVariant) -> str:
    from sdk_build.matrix import variant_label

    return (f"{job.output_dir.name}: " if len(jobs) > 1 else "") + variant_label(planned)


def _up_to_date_outcome(job: MatrixJob, planned: PlannedVariant) -> VariantOutcome | None:
    """The outcome of a variant whose bundles are all published and whole (resume), else None (to build)."""
    from sdk_build.artifacts.manifest import load_manifest, record_fields
    from sdk_build.matrix import VariantOutcome
    from sdk_build.pipeline import is_up_to_date, resolve_export_options, wanted_bundles

    options = resolve_export_options(job.checkpoint, planned.spec, job.export_options(planned))
    wanted = wanted_bundles(job.checkpoint, planned.spec, options)
    manifest = load_manifest(job.output_dir)
    if not all(is_up_to_date(job.output_dir, manifest.find(n), fp) for n, fp in wanted.values()):
        return None
    entries = [e for e in (manifest.find(n) for n, _ in wanted.values()) if e is not None]
    record_fields(job.output_dir, entries, planned.fields)  # the driver is this run's one writer of the manifest
    return VariantOutcome(planned, [e.file for e in entries], True, 0.0, max(e.peak_rss_bytes for e in entries),
                          [e.bytes for e in entries], output_dir=job.output_dir)


def _export_ref(job: MatrixJob, planned: PlannedVariant, options: Any, exports: dict[Path, Any], export_remote: Any,
                pending: dict[Any, _Pending], memory: int) -> Any:
    """The ObjectRef of the export task `planned` needs (one per distinct float export), or None when the float
    export is already in the cache."""
    from sdk_build.convert.export import float_export_path
    from sdk_build.pipeline import resolve_export_options
    from sdk_build.sources import default_cache_dir

    resolved = resolve_export_options(job.checkpoint, planned.spec, options)
    path = float_export_path(job.cache_dir or default_cache_dir(), job.checkpoint, planned.spec.ekv,
                             planned.spec.prefill_lengths, resolved)
    if path in exports:
        pending[exports[path]].members.append(planned)
        return exports[path]
    if path.exists():
        return None
    ref = export_remote.options(
        num_cpus=1, memory=memory, max_retries=MAX_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD",
        name=f"export ekv{planned.spec.ekv}",
    ).remote(job.checkpoint, planned.spec, str(job.cache_dir) if job.cache_dir else None, resolved)
    exports[path] = ref
    prefill = "/".join(str(p) for p in sorted(planned.spec.prefill_lengths))
    pending[ref] = _Pending("export", f"ekv{planned.spec.ekv} prefill {prefill}"
                            + (" gpu" if planned.spec.target.gpu else ""), job, [planned])
    return ref


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    return str(cause if isinstance(cause, BaseException) else exc).strip().splitlines()[0][:500]


def _drain(ray: Any, pending: dict[Any, _Pending], outcomes: list[VariantOutcome | None], nodes: int) -> None:
    """Wait for every task, publishing each bundle as it finishes; progress per task and per host."""
    from sdk_build.executors.ray_progress import RayProgress

    exports_seen: dict[int, ExportResult] = {}
    with RayProgress(total=len(pending), nodes=nodes) as progress:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            task = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a RayTaskError wrapping any error, or a worker lost MAX_RETRIES times
                error = _error_text(exc)
                progress.finished(task.kind, task.label, None, error)
                if task.kind == "bundle":
                    _failed(outcomes, task, error)
                continue
            if isinstance(result, ExportResult):
                # its time counts once, in the group's first variant (as the local executor reports it); its
                # peak in each
                for position, planned in enumerate(task.members):
                    exports_seen[id(planned)] = result if position == 0 else dataclasses.replace(result, seconds=0.0)
                progress.finished("export", task.label, result.where, "", result.seconds)
                continue
            assert isinstance(result, BundleResult)
            try:
                _publish(task, result, outcomes, exports_seen)
                progress.finished("bundle", task.label, result.where, "", result.seconds)
            except BuildError as exc:
                progress.finished("bundle", task.label, result.where, str(exc))
                _failed(outcomes, task, str(exc))


def _failed(outcomes: list[VariantOutcome | None], task: _Pending, error: str) -> None:
    from sdk_build.matrix import VariantOutcome

    planned = task.members[0]
    outcomes[task.index] = VariantOutcome(planned, [], False, 0.0, 0, [], error, output_dir=task.job.output_dir)


def _publish(task: _Pending, result: BundleResult, outcomes: list[VariantOutcome | None],
             exports_seen: dict[int, ExportResult]) -> None:
    """Move the task's staged bundles into --output with their manifest entries (one atomic step each)."""
    from sdk_build.artifacts.manifest import publish_bundle, sha256_file
    from sdk_build.matrix import VariantOutcome

    planned = task.members[0]
    assert task.task_dir is not None
    for entry in result.entries:
        staged = task.task_dir / entry.file
        if not staged.is_file() or staged.stat().st_size != entry.bytes:
            raise BuildError(f"{staged} is missing or not whole on the driver: --output must be a shared path")
        if sha256_file(staged) != entry.sha256:
            raise BuildError(f"{staged} does not have the sha256 its worker computed: the shared file system "
                             "returned other bytes; check the NFS mount")
        planned.fields.apply(entry)
        publish_bundle(task.job.output_dir, staged, entry)
    export = exports_seen.get(id(planned))
    peak = max([e.peak_rss_bytes for e in result.entries] + [export.peak_rss_bytes if export else 0])
    outcomes[task.index] = VariantOutcome(
        planned, [e.file for e in result.entries], False, result.seconds + (export.seconds if export else 0.0), peak,
        [e.bytes for e in result.entries], node=result.where.label, node_id=result.where.node_id,
        export_node_id=export.where.node_id if export else "", output_dir=task.job.output_dir)
