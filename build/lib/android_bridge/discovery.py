"""Find phones: USB serials, `adb connect host:port` (Wi-Fi debugging, farms), and remote adb servers.

Everything goes through one adb server (local or remote, see `server.py`); this module lists what that
server sees and attaches network devices to it.
"""

from __future__ import annotations

import dataclasses
import os
import time

import adbutils
from adbutils import AdbDevice

from android_bridge.errors import AdbServerError, DeviceNotFoundError
from android_bridge.server import AdbServer, client


@dataclasses.dataclass
class AttachedDevice:
    serial: str
    state: str  # "device" | "offline" | "unauthorized" | ...
    transport: str  # "usb" | "tcp" | "emulator"
    product: str = ""
    model: str = ""
    device: str = ""
    transport_id: int | None = None
    server: str = ""


def _transport_kind(serial: str, tags: dict[str, str]) -> str:
    if serial.startswith("emulator-"):
        return "emulator"
    if "usb" in tags or ":" not in serial:
        return "usb"
    return "tcp"


def list_devices(server: AdbServer, *, timeout_s: float = 10.0) -> list[AttachedDevice]:
    """Every device the server knows, in any state (`adb devices -l`)."""
    try:
        infos = client(server, timeout_s).list(extended=True)
    except adbutils.AdbError as exc:
        raise AdbServerError(f"adb server {server} failed to list devices: {exc}") from exc
    return [AttachedDevice(serial=i.serial, state=i.state, transport=_transport_kind(i.serial, i.tags),
                           product=i.tags.get("product", ""), model=i.tags.get("model", ""),
                           device=i.tags.get("device", ""), transport_id=i.transport_id, server=str(server))
            for i in infos]


def connect(server: AdbServer, address: str, *, timeout_s: float = 15.0) -> AttachedDevice:
    """`adb connect address` on `server`, then wait until the device is online there."""
    try:
        answer = client(server, timeout_s).connect(address, timeout=timeout_s)
    except adbutils.AdbError as exc:
        raise DeviceNotFoundError(f"adb server {server} could not connect to {address}: {exc}") from exc
    if "connected" not in answer or "unable" in answer or "failed" in answer:
        raise DeviceNotFoundError(f"adb server {server} could not connect to {address}: {answer.strip()}")
    return wait_for_device(server, address, timeout_s=timeout_s)


def disconnect(server: AdbServer, address: str, *, timeout_s: float = 10.0) -> None:
    client(server, timeout_s).disconnect(address)


def wait_for_device(server: AdbServer, serial: str, *, timeout_s: float = 15.0) -> AttachedDevice:
    deadline = time.monotonic() + timeout_s
    seen: AttachedDevice | None = None
    while True:
        seen = next((d for d in list_devices(server, timeout_s=timeout_s) if d.serial == serial), None)
        if seen is not None and seen.state == "device":
            return seen
        if time.monotonic() >= deadline:
            state = f"state '{seen.state}'" if seen else "not listed"
            raise DeviceNotFoundError(
                f"device {serial} is {state} on adb server {server} after {timeout_s:g} s; "
                "for a network device run `python -m android_bridge connect HOST:PORT`, for USB check the cable "
                "and accept the debugging prompt")
        time.sleep(0.2)


def pick_serial(server: AdbServer, serial: str | None, *, timeout_s: float = 15.0) -> str:
    """`serial`, else $ANDROID_SERIAL, else the only online device; several or none is an error naming them."""
    if serial:
        return serial
    if os.environ.get("ANDROID_SERIAL"):
        return os.environ["ANDROID_SERIAL"]
    online = [d.serial for d in list_devices(server, timeout_s=timeout_s) if d.state == "device"]
    if len(online) == 1:
        return online[0]
    if not online:
        raise DeviceNotFoundError(f"no device is online on adb server {server}; attach one (docs/android_bridge.md)")
    raise DeviceNotFoundError(f"several devices on adb server {server} ({', '.join(online)}): pick one with --serial")


def open_device(server: AdbServer, serial: str, *, timeout_s: float = 15.0) -> AdbDevice:
    """An adbutils device handle for `serial`, connecting `host:port` serials that are not attached yet."""
    known = {d.serial: d for d in list_devices(server, timeout_s=timeout_s)}
    if serial not in known and ":" in serial and not serial.startswith("emulator-"):
        connect(server, serial, timeout_s=timeout_s)
    else:
        wait_for_device(server, serial, timeout_s=timeout_s)
    return client(server, timeout_s).device(serial=serial)
