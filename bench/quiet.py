"""Is anything else using the CPU? Measure it, and wait (a bounded time) for a quiet machine before a timed run.

On a 2-core machine shared with other jobs, a run that starts while a compiler or a converter holds a core measures
the contention, not the runtime; and not evenly: llama.cpp's worker threads meet at a spinning barrier after every
operation, so when one of its 2 threads is descheduled the other spins out its time slice, and its decode falls
10-40x, where LiteRT-LM's XNNPACK thread pool (which sleeps when idle) falls 3-4x. So each timed run first waits until
the other load is below a threshold, and the load seen is recorded next to the figure.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (iowait and idle are not busy)


def cpu_times(stat_text: str) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate `cpu` line of a /proc/stat text."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values)), sum(values[:8])
    raise ValueError("no aggregate cpu line in /proc/stat")


def busy_cores(interval_s: float = 1.0) -> float:
    """How many cores' worth of CPU the whole machine used over `interval_s` (0 when /proc/stat is unreadable)."""
    try:
        busy0, total0 = cpu_times(Path("/proc/stat").read_text())
        time.sleep(interval_s)
        busy1, total1 = cpu_times(Path("/proc/stat").read_text())
    except (OSError, ValueError):
        return 0.0
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_quiet(max_busy_cores: float, timeout_s: float, interval_s: float = 1.0) -> tuple[float, float]:
    """Wait until other work uses at most `max_busy_cores`, or `timeout_s` passes; (busy cores last seen, waited s)."""
    started = time.monotonic()
    busy = busy_cores(interval_s)
    while busy > max_busy_cores and time.monotonic() - started < timeout_s:
        busy = busy_cores(interval_s)
    return busy, time.monotonic() - started


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """`--max-busy` and `--quiet-wait`, the same in every timed benchmark (read by `wait_until_quiet`)."""
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.3,
        help="before each timed run, wait until other work uses at most this many cores (default 0.3)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="longest wait for that, in seconds, per run (default 120)"
    )
