"""What a phone is: model, SoC, ABI, Android version, RAM, CPU clusters, GPU, thermal state.

Read with plain shell commands every Android has (`getprop`, `/proc/meminfo`, `/sys/.../cpufreq`,
`dumpsys`), so it works over any adb transport without installing an app. The big-core set feeds
`taskset`: LLM decode is memory- and big-core-bound, and letting the scheduler wander onto little cores
makes runs incomparable.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from adbutils import AdbDevice

from android_bridge import shell
from android_bridge.thermal import ThermalReading, read_thermal

_PROP_RE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")


@dataclasses.dataclass
class DeviceFacts:
    serial: str
    manufacturer: str
    model: str
    product: str
    soc: str  # "QTI SM8650", else the board platform ("pineapple"), else ro.hardware
    board_platform: str
    abi: str
    android_release: str
    sdk: int
    ram_bytes: int | None
    cpu_max_freq_khz: list[int]
    big_cores: list[int]
    gpu: str  # from SurfaceFlinger's GLES line; "" where it does not say
    thermal: ThermalReading
    fingerprint: str = ""

    @property
    def label(self) -> str:
        name = " ".join(part for part in (self.manufacturer, self.model) if part)
        return f"{name} ({self.soc})" if self.soc else name

    @property
    def big_core_mask(self) -> str:
        return affinity_mask(self.big_cores)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["big_core_mask"] = self.big_core_mask
        data["label"] = self.label
        return data


def parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        match = _PROP_RE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def parse_meminfo_total(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def parse_cpu_max_freqs(text: str) -> dict[int, int]:
    """Lines `/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq KHZ` -> {N: KHZ}."""
    freqs = {}
    for match in re.finditer(r"cpu(\d+)/cpufreq/cpuinfo_max_freq\s+(\d+)", text):
        freqs[int(match.group(1))] = int(match.group(2))
    return freqs


def big_cores(max_freq_khz: dict[int, int]) -> list[int]:
    """Cores outside the slowest cluster (e.g. 4-7 on a 4+3+1 phone); all cores when there is one cluster."""
    if not max_freq_khz:
        return []
    slowest = min(max_freq_khz.values())
    big = sorted(cpu for cpu, freq in max_freq_khz.items() if freq > slowest)
    return big or sorted(max_freq_khz)


def affinity_mask(cores: list[int]) -> str:
    """`taskset` mask in hex, e.g. [4, 5, 6, 7] -> 'f0'."""
    return format(sum(1 << core for core in cores), "x") if cores else ""


def parse_gles(text: str) -> str:
    match = re.search(r"^GLES:\s*(.+)$", text, re.MULTILINE)
    if not match:
        return ""
    vendor_renderer = match.group(1).split(",")
    return ",".join(vendor_renderer[:2]).strip()


def read_facts(device: AdbDevice, *, timeout_s: float = 20.0) -> DeviceFacts:
    props = parse_getprop(shell.run(device, "getprop", timeout_s=timeout_s, check=True).stdout)
    meminfo = shell.run(device, "cat /proc/meminfo", timeout_s=timeout_s).stdout
    freqs = parse_cpu_max_freqs(shell.run(
        device, "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; "
                'do echo "$f $(cat $f 2>/dev/null)"; done', timeout_s=timeout_s).stdout)
    gles = parse_gles(shell.run(device, "dumpsys SurfaceFlinger 2>/dev/null | grep -m 1 '^GLES:'",
                                timeout_s=timeout_s).stdout)
    soc_model = props.get("ro.soc.model", "")
    soc = " ".join(p for p in (props.get("ro.soc.manufacturer", ""), soc_model) if p) if soc_model else (
        props.get("ro.board.platform") or props.get("ro.hardware", ""))
    return DeviceFacts(
        serial=device.serial or "",
        manufacturer=props.get("ro.product.manufacturer", ""),
        model=props.get("ro.product.model", ""),
        product=props.get("ro.product.name", ""),
        soc=soc,
        board_platform=props.get("ro.board.platform", ""),
        abi=props.get("ro.product.cpu.abi", ""),
        android_release=props.get("ro.build.version.release", ""),
        sdk=int(props.get("ro.build.version.sdk", "0") or 0),
        ram_bytes=parse_meminfo_total(meminfo),
        cpu_max_freq_khz=[freqs[c] for c in sorted(freqs)],
        big_cores=big_cores(freqs),
        gpu=gles,
        thermal=read_thermal(device, timeout_s=timeout_s),
        fingerprint=props.get("ro.build.fingerprint", ""),
    )
