"""The local executor: this process builds everything, export groups on `jobs_at_once` threads (the behaviour
`sdk-build matrix` always had; `check_parallelism` has already refused a `--jobs` the memory cannot hold)."""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdk_build.matrix import MatrixJob, PlannedVariant, VariantOutcome


def run_local(jobs: list[MatrixJob], jobs_at_once: int = 1) -> list[VariantOutcome]:
    """Build every job's groups; within a group the variants run in order, after the group's one float export."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sdk_build.matrix import build_planned, variant_label
    from sdk_build.system.progress import console

    groups: list[tuple[MatrixJob, tuple[PlannedVariant, ...]]] = [(job, g) for job in jobs for g in job.groups]
    total = sum(len(g) for _, g in groups)
    outcomes: list[VariantOutcome] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        overall = progress.add_task("matrix", total=total)
        prefix = len(jobs) > 1

        def run_group(item: tuple[MatrixJob, tuple[PlannedVariant, ...]]) -> list[VariantOutcome]:
            job, members = item
            results = []
            for planned in members:
                label = (f"{job.output_dir.name}: " if prefix else "") + variant_label(planned)
                task = progress.add_task(label, total=1)
                results.append(build_planned(job, planned))
                progress.update(task, completed=1)
                progress.update(overall, advance=1)
                if not console.is_terminal:
                    result = results[-1]
                    console.print(f"matrix: {label}: {result.error or ('up to date' if result.skipped else 'built')}")
            return results

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs_at_once)) as pool:
            for group_result in pool.map(run_group, groups):
                outcomes.extend(group_result)
    return outcomes
