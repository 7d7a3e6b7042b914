"""Run a command and measure its wall time and the peak resident memory of its whole process tree.

`getrusage(RUSAGE_CHILDREN)` only reports the largest single descendant, which under-counts a build whose parent
holds a model while a child process exports it. Sampling /proc every few hundred milliseconds sums the tree, which
is what decides whether a build fits in a machine's RAM.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.children import tree_pids

SAMPLE_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class MeasuredRun:
    command: tuple[str, ...]
    seconds: float
    peak_tree_rss_bytes: int
    returncode: int
    output_tail: str

    def check(self) -> MeasuredRun:
        """Raise with the command's last output lines when it failed: a failed side must not yield a ratio."""
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {self.returncode}:\n{self.output_tail}")
        return self


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(root: int) -> int:
    """Resident bytes of `root` and all its descendants right now."""
    return sum(_rss_bytes(pid) for pid in tree_pids(root))


def run_measured(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, log: Path | None = None
) -> MeasuredRun:
    """Run `command` to completion; output goes to `log` (or is kept in memory) and its tail is returned."""
    started = time.monotonic()
    sink = open(log, "wb") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    process = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    stop.set()
    sampler.join()
    seconds = time.monotonic() - started
    if log:
        sink.close()  # type: ignore[union-attr]
        output = Path(log).read_bytes()
    tail = (output or b"").decode(errors="replace")[-3000:]
    return MeasuredRun(tuple(command), seconds, peak, process.returncode, tail)
