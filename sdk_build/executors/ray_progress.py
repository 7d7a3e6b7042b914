"""The driver's view of a Ray matrix run: one bar for every task, one line per host with what it finished.

On a terminal it is a rich progress display (like the local executor's); in a log (CI, nohup) each finished task
prints one line with its host, IP and Ray node, so a slow or failing host can be told from the others.
"""

from __future__ import annotations

import collections
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from sdk_build.executors.ray_tasks import Where


class RayProgress:
    """Count finished export and bundle tasks, overall and per host."""

    def __init__(self, total: int, nodes: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from sdk_build.system.progress import console

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=not console.is_terminal)
        self.overall = self.progress.add_task(f"matrix on Ray ({nodes} node{'s' * (nodes != 1)})", total=total)
        self.hosts: dict[str, Any] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.failures = 0

    def __enter__(self) -> Self:
        self.progress.__enter__()
        if not self.console.is_terminal:
            self.console.print(f"matrix: {self.progress.tasks[0].description}: {self.progress.tasks[0].total} tasks")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.progress.__exit__(kind, value, traceback)
        if not self.console.is_terminal and self.counts:
            per_host = ", ".join(f"{host}: {count}" for host, count in sorted(self.counts.items()))
            self.console.print(f"matrix: tasks per host: {per_host}; {self.failures} failed", soft_wrap=True)

    def finished(self, kind: str, label: str, where: Where | None, error: str, seconds: float = 0.0) -> None:
        """One task is over: `where` None when it never returned (its error says why)."""
        from sdk_build.system.terminal import markup_safe

        host = where.label if where else "(no result)"
        self.counts[host] += 1
        self.failures += bool(error)
        if host not in self.hosts:
            self.hosts[host] = self.progress.add_task(f"  {host}", total=None)
        self.progress.update(self.hosts[host], completed=self.counts[host])
        self.progress.update(self.overall, advance=1)
        if not self.console.is_terminal:
            state = f"FAILED: {markup_safe(error)}" if error else f"done in {seconds:.1f} s"
            self.console.print(f"matrix: {kind} {markup_safe(label)} on {markup_safe(host)}: {state}", soft_wrap=True)
