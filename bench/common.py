"""What every benchmark script shares: medians, ratios, a printed table, and a JSON record with the machine it ran on.

Kept tiny on purpose: each script owns its measurement; this module only makes their outputs look and read alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from device_tests.host_env import cpu_model
from device_tests.record import utc_now
from sdk_build.system.atomic import atomic_write_json

DEFAULT_RESULTS_DIR = Path("reports/bench")


def median(values: Sequence[float]) -> float:
    """Median of repeated runs; raises on an empty list so a benchmark that measured nothing cannot report a number."""
    if not values:
        raise ValueError("no samples: the benchmark measured nothing")
    return float(statistics.median(values))


def ratio(ours: float, peer: float) -> float | None:
    """ours / peer, or None where the peer measured zero (a ratio against nothing means nothing)."""
    return ours / peer if peer else None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """Where a figure was measured: numbers without their machine cannot be compared."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }


def write_results(name: str, payload: dict[str, Any], results_dir: Path = DEFAULT_RESULTS_DIR) -> Path:
    """Write `payload` (plus machine and time) to results_dir/name.json atomically and return the path."""
    path = Path(results_dir) / f"{name}.json"
    atomic_write_json(path, {"benchmark": name, "measured_at": utc_now(), "machine": machine(), **payload})
    return path


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(format_cell(cell) for cell in row))
    Console(width=200).print(table)


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)
