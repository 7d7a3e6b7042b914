"""Atomic file output: write to a temporary sibling, fsync, then rename.

A crash or Ctrl-C mid-write must never leave a half bundle (or half manifest) under its final
name, because downstream tools trust a file that exists under its final name to be whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last: some writers (mediapipe's bundler) append their own if it is missing.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be served and shared
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(final: Path, data: Any) -> None:
    atomic_write_text(final, json.dumps(data, indent=2, sort_keys=False) + "\n")


def move_into_place(src: Path, final: Path) -> None:
    """Make the whole file `src` (on `final`'s file system) durable, then rename it onto `final`."""
    with open(src, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(src, 0o666 & ~_umask())
    os.replace(src, final)


def atomic_copy(src: Path, final: Path) -> None:
    with atomic_path(final) as tmp:
        shutil.copyfile(src, tmp)


def check_free_space(directory: Path, needed_bytes: int) -> None:
    """Fail early, with a clear message, when a build would run out of disk half way."""
    from sdk_build.errors import BuildError

    directory = Path(directory)
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise BuildError(
            f"not enough disk space in {directory}: {_size(free)} free, about {_size(needed_bytes)} needed; "
            "free some space or pass another folder"
        )


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"
