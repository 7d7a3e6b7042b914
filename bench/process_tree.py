"""Run a command and measure its wall time and the peak resident memory of its whole process tree.

`getrusage(RUSAGE_CHILDREN)` only reports the largest single descendant, which under-counts a build whose parent
holds a model while a child process exports it. Sampling /proc every few hundred milliseconds sums the tree, which
is what decides whether a build fits in a machine's RAM.

Two sums are kept. RSS summed over processes counts a page mapped by several of them (the shared libraries of
TensorFlow, LiteRT and torch, loaded by a parent and by its export child) once per process, so it over-states a tree
of several processes against a single process; PSS (proportional set size, /proc/PID/smaps_rollup) splits each shared
page between the processes mapping it, so its sum is what the tree really occupies.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.children import tree_pids
from sdk_build.system.memory import proc_kib_field_bytes

SAMPLE_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class MeasuredRun:
    command: tuple[str, ...]
    seconds: float
    peak_tree_rss_bytes: int
    peak_tree_pss_bytes: int
    returncode: int
    output_tail: str

    def check(self) -> MeasuredRun:
        """Raise with the command's last output lines when it failed: a failed side must not yield a ratio."""
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {self.returncode}:\n{self.output_tail}")
        return self


def tree_rss_and_pss_bytes(root: int) -> tuple[int, int]:
    """(summed RSS, summed PSS) of `root` and all its descendants right now (a process gone meanwhile counts 0)."""
    pids = list(tree_pids(root))
    rss = sum(proc_kib_field_bytes(f"/proc/{pid}/status", "VmRSS") or 0 for pid in pids)
    pss = sum(proc_kib_field_bytes(f"/proc/{pid}/smaps_rollup", "Pss") or 0 for pid in pids)
    return rss, pss


def run_measured(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, log: Path | None = None
) -> MeasuredRun:
    """Run `command` to completion; output goes to `log` (or is kept in memory) and its tail is returned."""
    started = time.monotonic()
    sink = open(log, "wb") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    process = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    peak = peak_pss = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not stop.is_set():
            rss, pss = tree_rss_and_pss_bytes(process.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
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
    return MeasuredRun(tuple(command), seconds, peak, peak_pss, process.returncode, tail)
