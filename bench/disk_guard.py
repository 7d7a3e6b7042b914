"""Disk space for long benchmarks: check before starting, and stop the run if the disk is nearly full.

A fresh virtualenv, a model cache and bundles take about 8 GiB. On a machine shared with other jobs a run that
fills the disk breaks them too (writes fail with ENOSPC everywhere), so a benchmark refuses to start without
room, and `DiskGuard` stops the child it is running (its whole process group) once free space falls below a
floor, recording why, instead of taking the last bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

GIB = 2**30


class NotEnoughDisk(RuntimeError):
    pass


def require_free(path: Path, needed_bytes: int) -> int:
    """Free bytes at `path`; raise NotEnoughDisk with what to do when fewer than `needed_bytes`."""
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise NotEnoughDisk(
            f"{free / GIB:.1f} GiB free under {path}, about {needed_bytes / GIB:.0f} GiB needed; free some space "
            "or pass --work-dir on a larger disk"
        )
    return free


class DiskGuard:
    """While active, checks free space every `poll_s` seconds and stops the watched child below `floor_bytes`."""

    def __init__(self, path: Path, floor_bytes: int, poll_s: float = 5.0) -> None:
        self.path = path
        self.floor_bytes = floor_bytes
        self.poll_s = poll_s
        self.reason: str | None = None
        self.lowest_free: int | None = None
        self._process: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="disk-guard", daemon=True)

    def watch(self, process: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
        self._process = process

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                free = shutil.disk_usage(self.path).free
            except OSError:
                continue
            self.lowest_free = free if self.lowest_free is None else min(self.lowest_free, free)
            if free >= self.floor_bytes or self.reason:
                continue
            self.reason = (
                f"stopped: only {free / GIB:.1f} GiB left on the disk of {self.path} (floor "
                f"{self.floor_bytes / GIB:.1f} GiB); other jobs on this machine need it too"
            )
            process = self._process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_s + 1)
