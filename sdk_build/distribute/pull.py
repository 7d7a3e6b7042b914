"""`sdk-build pull`: choose bundles from a catalog and download them, resumably and verified, with a progress bar.

This is the app developer's side of the bundle folder: they pull what was built instead of building it. Catalog
sources are in `sdk_build.distribute.catalog_source`, selection in `sdk_build.artifacts.catalog`, the byte-exact download in
`sdk_build.distribute.download`; this module ties them together and shows progress. Files are independent: one that fails
does not stop the others, and `PullReport.failures` says which failed and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from sdk_build.artifacts.catalog import CatalogBundle, Selection, select
from sdk_build.distribute.catalog_source import LoadedCatalog, load_catalog
from sdk_build.distribute.download import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, DownloadResult, ProgressCallback, download
from sdk_build.errors import PullError, os_error_message
from sdk_build.system.atomic import check_free_space
from sdk_build.system.progress import _quiet, console
from sdk_build.system.terminal import markup_safe


@dataclasses.dataclass
class PullReport:
    catalog: str
    selected: list[CatalogBundle]
    results: list[DownloadResult]
    failures: list[tuple[str, str]]

    @property
    def transferred(self) -> int:
        return sum(r.transferred for r in self.results)


def plan(
    source: str, selection: Selection, *, timeout: float = DEFAULT_TIMEOUT_S, cache_dir: Path | None = None
) -> tuple[LoadedCatalog, list[CatalogBundle]]:
    """Read the catalog and pick the bundles `selection` asks for (an error names what the catalog offers)."""
    catalog = load_catalog(source, timeout=timeout, cache_dir=cache_dir)
    return catalog, select(catalog.bundles, selection)


def _still_needed(dest: Path, bundle: CatalogBundle) -> int:
    """Bytes still to come for `bundle` (a rough figure for the disk-space check: no hashing here)."""
    final = dest / bundle.file
    if final.is_file() and final.stat().st_size == bundle.bytes:
        return 0
    partial = dest / f".{bundle.file}.partial"
    have = partial.stat().st_size if partial.is_file() else 0
    return max(0, bundle.bytes - have)


def _prepare_dest(dest: Path, chosen: list[CatalogBundle]) -> None:
    """Make `dest` a writable folder with room for what is still to come, or say in one line why it cannot be."""
    if dest.exists() and not dest.is_dir():
        raise PullError(f"--output {dest} is a file, not a folder; choose a folder to download into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        needed = sum(_still_needed(dest, b) for b in chosen)
    except OSError as exc:
        raise PullError(os_error_message(exc, "cannot use --dest")) from None
    if not os.access(dest, os.W_OK):
        raise PullError(f"--output {dest} is not writable; choose a folder you can write to")
    if needed:
        check_free_space(dest, needed + 64 * 2**20)


@contextlib.contextmanager
def _progress_bars() -> Iterator[tuple[object, bool]]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    live = console.is_terminal and not _quiet()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not live,
    ) as progress:
        yield progress, live


def pull(
    source: str,
    dest: Path,
    selection: Selection | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    cache_dir: Path | None = None,
) -> PullReport:
    """Download every bundle of `source`'s catalog matching `selection` into `dest`; see the module docstring."""
    catalog, chosen = plan(source, selection or Selection(), timeout=timeout, cache_dir=cache_dir)
    dest = Path(dest)
    _prepare_dest(dest, chosen)
    report = PullReport(catalog.location, chosen, [], [])
    with _progress_bars() as (progress, live):
        for bundle in chosen:
            task = progress.add_task(markup_safe(bundle.file), total=bundle.bytes)  # type: ignore[attr-defined]

            def update(done: int, total: int, task: int = task) -> None:
                progress.update(task, completed=done, total=total)  # type: ignore[attr-defined]

            callback: ProgressCallback = update
            try:
                result = download(catalog.remote_for(bundle), dest, progress=callback, retries=retries, timeout=timeout)
            except PullError as exc:
                report.failures.append((bundle.file, str(exc)))
                if not live and not _quiet():
                    console.print(f"[red]failed[/] {markup_safe(bundle.file)}", soft_wrap=True)
                continue
            report.results.append(result)
            if not live and not _quiet():
                console.print(
                    f"{result.status} {markup_safe(bundle.file)} ({result.transferred / 2**20:.1f} MiB transferred)",
                    soft_wrap=True,
                )
    return report
