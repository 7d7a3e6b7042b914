"""The adb sync protocol (STAT/STA2, SEND) with time-outs, 64 KiB frames and byte ranges of a local file.

adbutils' Sync has no time-out on transfers, sends 4 KiB frames and only whole files; a resumable push
needs to send a byte range of a large file and to give up when the device stops answering.
"""

from __future__ import annotations

import dataclasses
import stat as stat_mod
import struct
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import adbutils
from adbutils import AdbDevice

from android_bridge.errors import CommandTimeoutError, DeviceDisconnectedError, PushError
from android_bridge.shell import features, translate_adb_error

DATA_MAX = 64 * 1024


@dataclasses.dataclass
class RemoteStat:
    exists: bool
    mode: int = 0
    size: int = 0
    mtime: int = 0

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)


class SyncSession:
    """One `sync:` stream. `idle_timeout_s` bounds every single read/write (no progress = failure)."""

    def __init__(self, device: AdbDevice, idle_timeout_s: float = 30.0) -> None:
        self.device, self.idle_timeout_s = device, idle_timeout_s
        self.serial = device.serial or "?"
        self._stat_v2 = "stat_v2" in features(device, idle_timeout_s)
        try:
            self._conn = device.open_transport(timeout=idle_timeout_s)
            self._conn.send_command("sync:")
            self._conn.check_okay()
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise translate_adb_error(exc, self.serial) from exc
        self._sock = self._conn.conn
        self._sock.settimeout(idle_timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is None:
                self._sock.sendall(b"QUIT" + bytes(4))
        except OSError:
            pass
        self._conn.close()

    def _request(self, request: bytes, payload: bytes) -> None:
        self._send(request + struct.pack("<I", len(payload)) + payload)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise CommandTimeoutError(
                f"device {self.serial} stopped accepting data for {self.idle_timeout_s:g} s") from exc
        except OSError as exc:
            raise DeviceDisconnectedError(f"lost device {self.serial} during a file transfer: {exc}") from exc

    def _recv(self, n: int) -> bytes:
        data = bytearray()
        try:
            while len(data) < n:
                chunk = self._sock.recv(n - len(data))
                if not chunk:
                    raise DeviceDisconnectedError(f"device {self.serial} closed the sync stream (gone?)")
                data += chunk
        except TimeoutError as exc:
            raise CommandTimeoutError(
                f"device {self.serial} did not answer a sync request in {self.idle_timeout_s:g} s") from exc
        except OSError as exc:
            raise DeviceDisconnectedError(f"lost device {self.serial} during a file transfer: {exc}") from exc
        return bytes(data)

    def stat(self, remote: str) -> RemoteStat:
        if self._stat_v2:
            self._request(b"STA2", remote.encode())
            reply = self._recv(72)
            (error, _dev, _ino, mode, _nlink, _uid, _gid, size, _atime, mtime, _ctime) = struct.unpack(
                "<IQQIIIIQqqq", reply[4:])
            return RemoteStat(False) if error else RemoteStat(True, mode, size, mtime)
        self._request(b"STAT", remote.encode())
        mode, size, mtime = struct.unpack("<III", self._recv(16)[4:])
        return RemoteStat(mode != 0, mode, size, mtime)

    def send_range(self, local: Path, offset: int, length: int, remote: str, mode: int = 0o644,
                   progress: Callable[[int], None] | None = None) -> int:
        """Write bytes [offset, offset+length) of `local` as the whole of `remote`; return bytes sent."""
        self._request(b"SEND", f"{remote},{stat_mod.S_IFREG | mode}".encode())
        sent = 0
        with open(local, "rb") as handle:
            handle.seek(offset)
            while sent < length:
                block = handle.read(min(DATA_MAX, length - sent))
                if not block:
                    raise PushError(f"{local} shrank while it was being pushed")
                self._send(b"DATA" + struct.pack("<I", len(block)) + block)
                sent += len(block)
                if progress:
                    progress(len(block))
        self._send(b"DONE" + struct.pack("<I", int(time.time())))
        status = self._recv(8)
        if status[:4] == b"FAIL":
            message = self._recv(struct.unpack("<I", status[4:])[0]).decode(errors="replace")
            raise PushError(f"device {self.serial} refused {remote}: {message}")
        if status[:4] != b"OKAY":
            raise PushError(f"device {self.serial} answered {status[:4]!r} to a push of {remote}")
        return sent
