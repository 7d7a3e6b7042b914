"""Work folders that say whether their owner is alive, and the removal of those a killed run left behind.

Why: a build stages its quantized model and bundles in a hidden work folder beside its output (`.build-*`, about
1 GB for the 1B), an export in one beside the cache (`.export-*`); a process killed by SIGKILL, SIGBUS or the OOM
killer never runs its cleanup, so those folders stayed for ever and filled the disk. Each work folder now holds an
exclusive `flock` on a file inside it for as long as its owner runs. The kernel drops the lock when the owner dies,
however it dies, so `remove_leftovers` can tell an abandoned folder (lock free) from one a running build (in this
process or another) is still using (lock held), without guessing from ages or process ids. Folders from versions
before the lock existed have no lock file and are removed only once they are a day old.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WORK_PREFIXES = (".build-", ".export-", ".litertlm-")
OWNER_LOCK = ".owner.lock"
UNLOCKED_LEGACY_AGE_S = 24 * 3600


@contextlib.contextmanager
def work_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new hidden folder `parent/<prefix>XXXX`, locked as owned while the block runs, removed after it."""
    if not prefix.startswith(WORK_PREFIXES):
        raise ValueError(f"work folder prefix {prefix!r} is not one of {WORK_PREFIXES}")
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    # The lock file takes its name only once locked: a cleaner never finds it present but free while we start.
    fd = os.open(path / f"{OWNER_LOCK}.new", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(path / f"{OWNER_LOCK}.new", path / OWNER_LOCK)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _abandoned(folder: Path, now: float) -> bool:
    try:
        fd = os.open(folder / OWNER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            return now - folder.stat().st_mtime > UNLOCKED_LEGACY_AGE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its owner is running
    finally:
        os.close(fd)
    return True


def remove_leftovers(folder: Path) -> list[tuple[Path, int]]:
    """Remove the work folders killed runs left in `folder`; returns (path, bytes freed) for each removed."""
    removed: list[tuple[Path, int]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(WORK_PREFIXES) or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if not _abandoned(path, now):
            continue
        size = _bytes_under(path)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append((path, size))
    return removed


def _bytes_under(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
