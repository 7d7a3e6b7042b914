"""The sha256 of an open file, computed once per version of the file and remembered.

Why the server hashes at all: a response's ETag and `X-Content-SHA256` must describe the bytes it sends, and the
manifest's sha256 only describes the file that was published with it. When the file a request opened still has
the modification time recorded at publication (`BundleEntry.mtime_ns`), it is that file; any other file (rebuilt
in place by some other tool, copied without its times, an entry from before publication stamps) is hashed here,
from the very descriptor that will be sent, before its identity is claimed. A version is (device, inode, size,
mtime, ctime): a rename brings a new inode and an in-place write a new mtime/ctime, so a remembered digest is
never reused for other bytes. One lock serialises hashing, so parallel first requests hash a file once.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading

CHUNK = 8 * 2**20
MAX_REMEMBERED = 1024

Version = tuple[int, int, int, int, int]


def version_of(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DigestCache:
    """sha256 hex digests of file versions (see the module docstring); bounded, oldest forgotten first."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._digests: collections.OrderedDict[Version, str] = collections.OrderedDict()
        self._max = max_remembered
        self._lock = threading.Lock()

    def known(self, st: os.stat_result) -> str | None:
        """The digest of this version if it was hashed before, else None (never hashes)."""
        with self._lock:
            return self._digests.get(version_of(st))

    def sha256(self, fd: int) -> str:
        """The sha256 of the whole file open as `fd` (read with pread: the descriptor's position is untouched)."""
        with self._lock:
            before = os.fstat(fd)
            key = version_of(before)
            if key in self._digests:
                self._digests.move_to_end(key)
                return self._digests[key]
            digest = hashlib.sha256()
            offset = 0
            while chunk := os.pread(fd, CHUNK, offset):
                digest.update(chunk)
                offset += len(chunk)
            value = digest.hexdigest()
            if version_of(os.fstat(fd)) == key:  # not written to while hashed: the digest names this version
                self._digests[key] = value
                while len(self._digests) > self._max:
                    self._digests.popitem(last=False)
            return value
