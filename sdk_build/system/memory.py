"""Peak resident memory of this process and of finished children (what a build needs of the machine)."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """Largest RSS of this process or any waited-for child so far (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024


def own_peak_rss_bytes() -> int:
    """Largest RSS of this process alone (children excluded)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def proc_kib_field_bytes(path: str, field: str) -> int | None:
    """The `FIELD:  N kB` line of a /proc file (meminfo, PID/status, PID/smaps_rollup) in bytes; None when the file
    or the field is missing (a process that has just exited, a kernel without it)."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo: what new work can use without swapping or OOM."""
    available = proc_kib_field_bytes("/proc/meminfo", "MemAvailable")
    if available is None:
        raise RuntimeError("no MemAvailable in /proc/meminfo")
    return available


def rss_bytes() -> int:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def release_freed_memory() -> int:
    """Give the memory this process has freed back to the OS; returns how much RSS dropped (bytes, >= 0).

    Why: a matrix build quantizes in this process and then starts the next float export (1B: ~6 GB) in a child, so
    whatever this process keeps after quantizing sits beside the export. glibc keeps freed heap memory mapped, and
    after a large free it raises its mmap threshold, so later buffers come from the heap too: quantizing the real
    270M to int8 left 178 MiB more resident than before it began, of which `malloc_trim(0)` gave back 156 MiB
    (peak 1.9 GiB; `python -m bench.quantizer_memory`). A no-op where the C library has no malloc_trim (musl, macOS).
    """
    import ctypes
    import ctypes.util
    import gc

    before = rss_bytes()
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return 0
    return max(0, before - rss_bytes())
