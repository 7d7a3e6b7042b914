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


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo: what new work can use without swapping or OOM."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")
