"""Make the LiteRT tools' memory-mapped file writes fail with an error instead of SIGBUS on a full disk.

Why: ai-edge-quantizer (and other LiteRT tools) write their output through `ai_edge_litert.tools.mmap_utils`:
it creates the file with `truncate` (a sparse file: no blocks reserved) and maps it. When the disk fills while
the mapped pages are written, the kernel cannot back them and sends SIGBUS: the build dies at once, with no
message, leaving its work folder behind. Reserving the blocks with `posix_fallocate` before mapping turns a full
disk into `OSError(ENOSPC)` at that point; the tools then fall back to an ordinary write (their own behaviour when
mapping fails), which fails the same way, and the build reports it as one line.

`install()` replaces `mmap_utils.get_mapped_buffer` once per process (idempotent, safe with parallel builds):
same contract, blocks reserved first. A no-op where the module is not installed.
"""

from __future__ import annotations

import mmap
import os
import threading
from typing import Any

_installed = False
_lock = threading.Lock()


def _reserving_get_mapped_buffer(path: Any, size: int) -> mmap.mmap:
    """`mmap_utils.get_mapped_buffer` with the file's blocks reserved before it is mapped."""
    fd = os.open(path, flags=os.O_RDWR | os.O_CREAT)
    try:
        os.truncate(fd, size)
        if size > 0:
            os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE)
    finally:
        os.close(fd)


def install() -> None:
    """Reserve blocks before every memory-mapped write of the LiteRT tools in this process (see the docstring)."""
    global _installed
    with _lock:
        if _installed:
            return
        try:
            from ai_edge_litert.tools import mmap_utils
        except ImportError:
            return
        if hasattr(os, "posix_fallocate"):
            mmap_utils.get_mapped_buffer = _reserving_get_mapped_buffer
        _installed = True
