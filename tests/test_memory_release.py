"""sdk_build.system.memory.release_freed_memory really hands freed heap memory back (glibc), measured on this process."""

from __future__ import annotations

import ctypes.util
import sys

import numpy as np
import pytest

from sdk_build.system.memory import release_freed_memory, rss_bytes

MIB = 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"), reason="needs glibc")
def test_freed_heap_memory_goes_back_to_the_os() -> None:
    # What the quantizer does to glibc: one large buffer freed (which raises glibc's mmap threshold to its size), then
    # many smaller ones that now come from the heap and stay mapped after they are freed.
    big = np.ones(24 * MIB, dtype=np.uint8)
    del big
    chunks = [np.ones(4 * MIB - 4096, dtype=np.uint8) for _ in range(64)]  # 256 MiB in heap chunks
    holding = rss_bytes()
    del chunks[:-1]  # keep the top chunk so that the heap cannot simply shrink from its end
    released = release_freed_memory()
    assert released > 128 * MIB, f"RSS {holding / MIB:.0f} MiB before, only {released / MIB:.0f} MiB released"
    assert rss_bytes() < holding - 128 * MIB


def test_proc_fields_are_read_in_bytes_and_missing_ones_are_none(tmp_path) -> None:
    from sdk_build.system.memory import available_bytes, proc_kib_field_bytes

    own_rss = proc_kib_field_bytes("/proc/self/status", "VmRSS")
    assert own_rss is not None and abs(own_rss - rss_bytes()) < 64 * MIB  # the same resident set, read two ways
    assert 0 < available_bytes() < proc_kib_field_bytes("/proc/meminfo", "MemTotal")  # type: ignore[operator]
    assert proc_kib_field_bytes("/proc/self/status", "NoSuchField") is None
    assert proc_kib_field_bytes(str(tmp_path / "gone"), "VmRSS") is None  # a process that has exited
