"""What Ray workers run for a matrix: one float export, or one quantize-and-bundle into a staging folder.

Why the staging folder: the manifest is written once per bundle, atomically, by the driver (sdk_build/artifacts/manifest.py
`publish_bundle`), never by workers on other hosts that could race on it. A worker builds with the ordinary
pipeline into `OUTPUT/.build-ray-*/task-N` (on the output folder's file system, which is shared: NFS or one
machine), and the driver renames the finished, hashed file into OUTPUT under the manifest lock.

A task retried after its worker died finds what the first attempt left: a whole bundle in its task folder (then it
is up to date there and returned as is), or a killed build's work folder (removed by the pipeline's leftover cleanup).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sdk_build.errors import BuildError

if TYPE_CHECKING:
    from sdk_build.artifacts.manifest import BundleEntry
    from sdk_build.convert.export import ExportOptions
    from sdk_build.sources import Checkpoint
    from sdk_build.spec import VariantSpec

KILL_ONCE_ENV = "GEMMA_EDGE_RAY_KILL_ONCE"
"""Test hook: a file path. The first bundle task that creates it (O_EXCL) SIGKILLs its own worker after building,
before returning: the worst moment (files staged, the driver told nothing), so the retry must still complete."""


@dataclasses.dataclass(frozen=True)
class Where:
    """The Ray node and process a task ran in, for the driver's per-host progress and the outcome."""

    node_id: str
    ip: str
    host: str
    pid: int

    @property
    def label(self) -> str:
        return f"{self.host} ({self.ip}, node {self.node_id[:8]})"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: str
    peak_rss_bytes: int
    seconds: float
    where: Where


@dataclasses.dataclass(frozen=True)
class BundleResult:
    entries: list[BundleEntry]
    skipped: bool
    seconds: float
    where: Where


def where() -> Where:
    import ray

    return Where(ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(), socket.gethostname(),
                 os.getpid())


def export_task(checkpoint: Checkpoint, variant: VariantSpec, cache_dir: str | None,
                options: ExportOptions) -> ExportResult:
    """The float export for `variant` with `options` (resolved by the driver: `pipeline.resolve_export_options`),
    into the shared cache where the bundle tasks' `build` finds it; a no-op when it is already there."""
    from sdk_build.pipeline import ensure_float_export
    from sdk_build.sources import default_cache_dir
    from sdk_build.system.leftovers import remove_leftovers
    from sdk_build.system.preflight import check_build_inputs, check_writable_folder

    started = time.monotonic()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    check_build_inputs(checkpoint, variant)
    check_writable_folder(cache / "exports", "--cache-dir")
    remove_leftovers(cache / "exports")
    path, peak = ensure_float_export(checkpoint, variant, cache, options)
    return ExportResult(str(path), peak, time.monotonic() - started, where())


def bundle_task(export: ExportResult | None, checkpoint_ref: str, checkpoint: Checkpoint, variant: VariantSpec,
                task_dir: str, cache_dir: str | None, options: ExportOptions | None) -> BundleResult:
    """Quantize and bundle `variant` into `task_dir` with the ordinary pipeline (so the bytes are those of a local
    build). `export` is the export task's result: Ray starts this task only once it exists."""
    from sdk_build.compose import build

    del export  # a dependency only: `build` finds the float export in the shared cache
    started = time.monotonic()
    folder = Path(task_dir)
    if not folder.parent.is_dir():
        raise BuildError(f"{folder.parent} (the driver's staging folder in --output) does not exist on "
                         f"{socket.gethostname()}: with --executor ray, --output must be a path every node sees "
                         "(one machine, or a shared file system such as NFS mounted at the same path)")
    folder.mkdir(exist_ok=True)
    outcome = build(checkpoint_ref, variant, folder, cache_dir=Path(cache_dir) if cache_dir else None,
                    checkpoint=checkpoint, export_options=options)
    _kill_once_for_tests()
    return BundleResult(outcome.entries, outcome.skipped, time.monotonic() - started, where())


def _kill_once_for_tests() -> None:
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
