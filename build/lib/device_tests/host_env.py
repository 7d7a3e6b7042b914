"""Describe the machine a host or web run happens on: CPU, OS, cores, thermal state where readable.

A number without its machine is useless for comparing later runs, and the device name is what decides
whether a published figure applies ("Apple M4 Max" on a lab Mac, "AMD EPYC" here).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU brand string: /proc/cpuinfo on Linux, sysctl on macOS, platform.processor() elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: a")):
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def os_description() -> str:
    release = Path("/etc/os-release")
    if release.exists():
        fields = dict(line.split("=", 1) for line in release.read_text().splitlines() if "=" in line)
        name = fields.get("PRETTY_NAME", "").strip('"')
        if name:
            return f"{name} (Linux {platform.release()})"
    if platform.system() == "Darwin":
        return f"macOS {platform.mac_ver()[0]}"
    return platform.platform()


def thermal_state() -> str:
    """Temperatures of the thermal zones and the CPU frequency governor, or why they cannot be read."""
    parts = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            temp = int((zone / "temp").read_text().strip()) / 1000
            parts.append(f"{kind} {temp:.1f}C")
        except (OSError, ValueError):
            continue
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor.exists():
        try:
            parts.append(f"governor {governor.read_text().strip()}")
        except OSError:
            pass
    return ", ".join(parts) if parts else "not readable (no thermal zones or cpufreq exposed)"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def host_facts() -> dict[str, Any]:
    """Facts for Environment.extra: what else ran on the machine matters on a shared box."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_affinity_available": affinity,
        "machine": platform.machine(),
        "load_average": load_average(),
        "memory_total_bytes": _memory_total(),
    }


def _memory_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
