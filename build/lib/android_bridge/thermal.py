"""Thermal state of a phone, and waiting for it to cool down between benchmark runs.

A phone that is still hot from the previous run throttles its big cores within seconds, so back-to-back
runs measure the cooling system, not the model. Sources, in order of preference: the thermal HAL through
`dumpsys thermalservice` (Android 10+: status 0-6 and per-sensor temperatures; the *skin* sensor is what
throttling policies key on) and `dumpsys battery` (every Android; tenths of a degree), which is the
fallback "device temperature" when no skin sensor is reported.
"""

from __future__ import annotations

import dataclasses
import re
import time

from adbutils import AdbDevice

from android_bridge import shell

THERMAL_STATUS_NAMES = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")
_TEMP_RE = re.compile(r"Temperature\{mValue=([-\d.]+), mType=(-?\d+), mName=([^,]*), mStatus=(\d+)\}")
TYPE_CPU, TYPE_GPU, TYPE_BATTERY, TYPE_SKIN = 0, 1, 2, 3


@dataclasses.dataclass
class ThermalReading:
    status: int | None = None
    skin_c: float | None = None
    cpu_max_c: float | None = None
    battery_c: float | None = None

    @property
    def device_c(self) -> float | None:
        """The temperature compared with the limit: skin if the HAL reports one, else battery."""
        return self.skin_c if self.skin_c is not None else self.battery_c

    def describe(self) -> str:
        parts = []
        if self.status is not None:
            name = THERMAL_STATUS_NAMES[self.status] if 0 <= self.status < len(THERMAL_STATUS_NAMES) else "?"
            parts.append(f"status {self.status} ({name})")
        for label, value in (("skin", self.skin_c), ("cpu max", self.cpu_max_c), ("battery", self.battery_c)):
            if value is not None:
                parts.append(f"{label} {value:.1f} C")
        return ", ".join(parts) or "unknown"


def parse_thermalservice(text: str) -> ThermalReading:
    reading = ThermalReading()
    match = re.search(r"Thermal Status:\s*(\d+)", text)
    if match:
        reading.status = int(match.group(1))
    section = text.split("Current temperatures from HAL:", 1)
    rows = _TEMP_RE.findall(section[1] if len(section) == 2 else text)
    for value, kind, _name, _status in rows:
        temp, kind_id = float(value), int(kind)
        if kind_id == TYPE_SKIN:
            reading.skin_c = temp if reading.skin_c is None else max(reading.skin_c, temp)
        elif kind_id == TYPE_CPU:
            reading.cpu_max_c = temp if reading.cpu_max_c is None else max(reading.cpu_max_c, temp)
        elif kind_id == TYPE_BATTERY and reading.battery_c is None:
            reading.battery_c = temp
    return reading


def parse_battery_temperature(text: str) -> float | None:
    match = re.search(r"^\s*temperature:\s*(-?\d+)", text, re.MULTILINE)
    return int(match.group(1)) / 10.0 if match else None


def read_thermal(device: AdbDevice, *, timeout_s: float = 15.0) -> ThermalReading:
    reading = parse_thermalservice(shell.run(device, "dumpsys thermalservice", timeout_s=timeout_s).stdout)
    battery = parse_battery_temperature(shell.run(device, "dumpsys battery", timeout_s=timeout_s).stdout)
    if battery is not None:
        reading.battery_c = battery
    return reading


@dataclasses.dataclass
class CoolDown:
    reading: ThermalReading
    waited_s: float
    cooled: bool  # False when max_wait_s ran out first


def wait_until_cool(device: AdbDevice, limit_c: float, *, max_wait_s: float = 600.0, poll_s: float = 5.0,
                    timeout_s: float = 15.0) -> CoolDown:
    """Poll until the device temperature is below `limit_c` and the thermal status is 0 (or unknown)."""
    start = time.monotonic()
    waited = 0.0  # time spent waiting, not reading: 0 when the phone was cool from the start
    while True:
        reading = read_thermal(device, timeout_s=timeout_s)
        temp = reading.device_c
        cool = (temp is None or temp < limit_c) and not reading.status
        if cool or time.monotonic() - start >= max_wait_s:
            return CoolDown(reading, waited, cool)
        pause = min(poll_s, max(0.0, max_wait_s - (time.monotonic() - start)))
        time.sleep(pause)
        waited += pause
