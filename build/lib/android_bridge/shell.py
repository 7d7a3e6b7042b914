"""Run one shell command on a device with a hard time-out, its exit code, and disconnect detection.

adbutils' `shell()` has no exit code and `shell2()` cannot tell "the phone vanished" from "the command
printed nothing", so this speaks the shell-v2 service (`shell,v2,raw:`) over an adbutils connection
itself: stdout/stderr/exit arrive as framed packets, a stream that ends without an exit packet means the
device went away, and a socket deadline bounds every call. Devices without `shell_v2` (Android < 7) get the
legacy service with the exit code echoed after a marker.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
from collections.abc import Callable

import adbutils
from adbutils import AdbDevice

from android_bridge.errors import (
    CommandTimeoutError,
    DeviceCommandError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
)

_EXIT_MARKER = "__GEMMA_EDGE_EXIT__:"
_features: dict[tuple[str, int, str], set[str]] = {}


@dataclasses.dataclass
class ShellResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    def check(self) -> ShellResult:
        if self.exit_code != 0:
            detail = (self.stderr or self.stdout).strip().splitlines()[-3:]
            raise DeviceCommandError(
                f"`{self.command}` exited with {self.exit_code} on the device: {' / '.join(detail)}")
        return self


def translate_adb_error(exc: Exception, serial: str) -> Exception:
    """Turn adbutils/adb server errors about the device into the bridge's own, with a hint."""
    text = str(exc)
    if "not found" in text or "offline" in text or "unauthorized" in text or "no devices" in text:
        hint = ("accept the USB debugging prompt on the phone" if "unauthorized" in text
                else "check the cable / `adb connect` it again / `python -m android_bridge devices`")
        return DeviceNotFoundError(f"device {serial}: {text.strip()}; {hint}")
    if isinstance(exc, (adbutils.AdbTimeout, socket.timeout, TimeoutError)):
        return CommandTimeoutError(f"adb did not answer for device {serial} in time ({text})")
    return DeviceDisconnectedError(f"lost device {serial}: {text.strip() or type(exc).__name__}")


def features(device: AdbDevice, timeout_s: float = 10.0) -> set[str]:
    client = device._client  # adbutils keeps the server address there
    key = (client.host, client.port, device.serial or "")
    if key not in _features:
        try:
            with device.open_transport("features", timeout=timeout_s) as conn:
                _features[key] = set(conn.read_string_block().split(","))
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise translate_adb_error(exc, device.serial or "?") from exc
    return _features[key]


def run(device: AdbDevice, command: str, *, timeout_s: float, check: bool = False,
        on_output: Callable[[bytes, bytes], None] | None = None) -> ShellResult:
    """Run `command` through the device's shell; raise CommandTimeoutError after `timeout_s` seconds.

    `on_output(stdout_chunk, stderr_chunk)` sees output as it arrives (for logs of long benchmarks).
    """
    serial = device.serial or "?"
    deadline = time.monotonic() + timeout_s
    v2 = "shell_v2" in features(device, timeout_s)
    try:
        conn = device.open_transport(timeout=max(0.1, min(timeout_s, 10.0)))
        # Legacy shell has no exit code: run the command in a subshell (so its own `exit` cannot skip the marker)
        # and echo the status after it.
        service = f"shell,v2,raw:{command}" if v2 else f"shell:({command}\n); echo {_EXIT_MARKER}$?"
        conn.send_command(service)
        conn.check_okay()
    except (adbutils.AdbError, OSError, EOFError) as exc:
        raise translate_adb_error(exc, serial) from exc
    out, err = bytearray(), bytearray()
    exit_code: int | None = None
    sock = conn.conn
    try:
        while exit_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            sock.settimeout(remaining)
            if v2:
                header = _recv_exact(sock, 5)
                if header is None:
                    break
                packet_id, length = struct.unpack("<BI", header)
                data = _recv_exact(sock, length) if length else b""
                if data is None:
                    break
                if packet_id == 1:
                    out += data
                    if on_output:
                        on_output(data, b"")
                elif packet_id == 2:
                    err += data
                    if on_output:
                        on_output(b"", data)
                elif packet_id == 3:
                    exit_code = data[0] if data else 255
            else:
                data = sock.recv(65536)
                if not data:
                    text = out.decode(errors="replace")
                    marker = text.rfind(_EXIT_MARKER)
                    if marker >= 0:
                        exit_code = int(text[marker + len(_EXIT_MARKER):].strip() or 255)
                        del out[len(text[:marker].encode()):]
                    break
                out += data
                if on_output:
                    on_output(data, b"")
    except TimeoutError as exc:
        raise CommandTimeoutError(
            f"`{_short(command)}` did not finish within {timeout_s:g} s on {serial}") from exc
    except OSError as exc:
        raise DeviceDisconnectedError(f"lost device {serial} while running `{_short(command)}`: {exc}") from exc
    finally:
        conn.close()
    if exit_code is None:
        raise DeviceDisconnectedError(
            f"device {serial} went away while running `{_short(command)}` "
            "(the shell stream ended without an exit code)")
    result = ShellResult(command, exit_code, out.decode(errors="replace"), err.decode(errors="replace"))
    return result.check() if check else result


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."


def quote(text: str) -> str:
    """Single-quote for the device's /system/bin/sh (mksh), same rules as POSIX sh."""
    return "'" + text.replace("'", "'\"'\"'") + "'"
