"""A loopback TCP server speaking the device side of ADB: the stand-in phone the real adb server talks to.

THIS IS NOT A PHONE. It lets the real `adb` server (`adb connect 127.0.0.1:PORT`) and adbutils drive
`android_bridge` end to end on a machine that has no phone and cannot run an emulator. It answers the
host's CNXN with its own (no AUTH), advertises `shell_v2`, and serves `shell:`, `shell,v2,...:`, `exec:`
and `sync:` (STAT/STA2/LST2/LIST/SEND/RECV/QUIT) over a sandbox folder of this host that stands for the
phone's filesystem. Shell commands run under `/bin/sh` on this host with device paths mapped into the
sandbox; phone-only commands come from `android_cmds.py`, and `litert_lm_main` resolves to this host's
`litert-lm benchmark` (`litert_lm_standin.py`), so a real bundle really runs (at x86 speed).

`Faults` make it misbehave on purpose (vanish mid-benchmark or mid-push, stall a command) so the
bridge's error paths are tested through real adb too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from . import protocol as p
from .paths import device_to_host, map_command, unmap_output
from .profile import DeviceProfile, find_litert_lm, populate_sandbox, shell_env

log = logging.getLogger("fake_adb_device")
# A command that executes litert_lm_main with flags (not one that hashes, moves or lists the file).
_RUNS_BENCHMARK = re.compile(r"litert_lm_main'?\s+'?--")
FIXTURE_DIR = Path(__file__).resolve().parent


@dataclasses.dataclass
class Faults:
    vanish_on_benchmark_run: int | None = None  # vanish this many seconds into the Nth litert_lm_main run
    vanish_delay_s: float = 0.2
    vanish_after_sync_bytes: int | None = None  # vanish once this many file bytes arrived through SEND
    stall_commands: tuple[str, ...] = ()  # shell commands starting with one of these never answer
    stall_benchmark_run: int | None = None  # the Nth litert_lm_main run hangs (a wedged benchmark)


class StreamClosed(Exception):
    """The host closed the stream (or the device vanished) while a service was using it."""


class _Stream:
    """One ADB stream (an OPENed service) with ADB's one-WRTE-in-flight flow control."""

    def __init__(self, transport: _Transport, local_id: int, remote_id: int) -> None:
        self.transport, self.local_id, self.remote_id = transport, local_id, remote_id
        self.inbound: queue.Queue[bytes | None] = queue.Queue()
        self._buffer = bytearray()
        self._ready = threading.Event()
        self._ready.set()
        self.closed = False
        self.on_close: list = []

    def write(self, data: bytes) -> None:
        limit = self.transport.max_payload
        for start in range(0, len(data), limit):
            while not self._ready.wait(0.5):
                if self.closed:
                    raise StreamClosed()
            if self.closed:
                raise StreamClosed()
            self._ready.clear()
            self.transport.send(p.A_WRTE, self.local_id, self.remote_id, data[start:start + limit])

    def acked(self) -> None:
        self._ready.set()

    def read_some(self) -> bytes | None:
        """Next inbound bytes; None at end of stream."""
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            return data
        chunk = self.inbound.get()
        if chunk is None:
            self.inbound.put(None)
        return chunk

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.inbound.get()
            if chunk is None:
                self.inbound.put(None)
                raise StreamClosed()
            self._buffer += chunk
        data, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self.transport.send(p.A_CLSE, self.local_id, self.remote_id)
            self.transport.forget(self.local_id)

    def remote_closed(self) -> None:
        self.closed = True
        self._ready.set()
        self.inbound.put(None)
        for callback in self.on_close:  # may block (killing a process): keep the transport thread free
            threading.Thread(target=callback, daemon=True).start()


class _Transport(threading.Thread):
    """One TCP connection from an adb server."""

    def __init__(self, device: FakeAdbDevice, sock: socket.socket) -> None:
        super().__init__(daemon=True, name=f"fake-adb-transport-{sock.fileno()}")
        self.device, self.sock = device, sock
        self.max_payload = p.MAX_PAYLOAD
        self.streams: dict[int, _Stream] = {}
        self._send_lock = threading.Lock()
        self._next_id = 1
        self.alive = True

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        try:
            with self._send_lock:
                self.sock.sendall(p.pack_message(command, arg0, arg1, data))
        except OSError:
            self.shutdown()

    def forget(self, local_id: int) -> None:
        self.streams.pop(local_id, None)

    def _recv_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("adb server closed the connection")
            data += chunk
        return bytes(data)

    def run(self) -> None:
        try:
            while self.alive:
                command, arg0, arg1, length = p.unpack_header(self._recv_exact(p.HEADER.size))
                self.handle(p.Message(command, arg0, arg1, self._recv_exact(length) if length else b""))
        except (OSError, ConnectionError, ValueError) as exc:
            log.debug("transport ended: %s", exc)
        finally:
            self.shutdown()

    def handle(self, msg: p.Message) -> None:
        if msg.command == p.A_CNXN:
            self.max_payload = min(p.MAX_PAYLOAD, msg.arg1 or p.MAX_PAYLOAD)
            self.send(p.A_CNXN, p.A_VERSION, p.MAX_PAYLOAD, self.device.profile.banner())
        elif msg.command == p.A_OPEN:
            service = msg.data.rstrip(b"\x00").decode(errors="replace")
            local_id = self._next_id
            self._next_id += 1
            stream = _Stream(self, local_id, msg.arg0)
            handler = self.device.service_for(service)
            if handler is None:
                self.send(p.A_CLSE, 0, msg.arg0)
                return
            self.streams[local_id] = stream
            self.send(p.A_OKAY, local_id, msg.arg0)
            threading.Thread(target=self._serve, args=(handler, stream, service), daemon=True).start()
        elif msg.command == p.A_WRTE:
            target = self.streams.get(msg.arg1)
            if target is not None:
                target.inbound.put(msg.data)
                self.send(p.A_OKAY, msg.arg1, msg.arg0)
        elif msg.command == p.A_OKAY:
            target = self.streams.get(msg.arg1)
            if target is not None:
                target.acked()
        elif msg.command == p.A_CLSE:
            target = self.streams.pop(msg.arg1, None)
            if target is not None:
                target.remote_closed()

    def _serve(self, handler, stream: _Stream, service: str) -> None:
        try:
            handler(stream, service)
        except StreamClosed:
            pass
        except Exception:  # a fixture bug must not hang the host: log it and close the stream
            log.exception("service %r failed", service)
        finally:
            stream.close()

    def shutdown(self) -> None:
        if not self.alive:
            return
        self.alive = False
        for stream in list(self.streams.values()):
            stream.remote_closed()
        self.streams.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeAdbDevice:
    """The stand-in phone. `start()` listens on 127.0.0.1:`port` (0 picks a free one); `vanish()` unplugs it."""

    def __init__(self, sandbox: Path, port: int = 0, profile: DeviceProfile | None = None,
                 faults: Faults | None = None, host: str = "127.0.0.1") -> None:
        self.sandbox = Path(sandbox).resolve()
        self.profile = profile or DeviceProfile()
        self.faults = faults or Faults()
        self.host, self.port = host, port
        self.state = populate_sandbox(self.sandbox, self.profile, FIXTURE_DIR, find_litert_lm())
        self.env = shell_env(self.sandbox, self.state, FIXTURE_DIR)
        self._listener: socket.socket | None = None
        self._transports: list[_Transport] = []
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.benchmark_runs = 0
        self.sync_bytes = 0
        self.vanished = threading.Event()

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> FakeAdbDevice:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(8)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True, name="fake-adb-accept").start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if self.vanished.is_set():
                sock.close()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = _Transport(self, sock)
            with self._lock:
                self._transports.append(transport)
            transport.start()

    def running_commands(self) -> int:
        with self._lock:
            return sum(1 for proc in self._procs if proc.poll() is None)

    def vanish(self) -> None:
        """Disappear like an unplugged phone: stop listening, drop every connection, kill running commands."""
        self.vanished.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            transports, procs = list(self._transports), list(self._procs)
        for transport in transports:
            transport.shutdown()
        for proc in procs:
            _kill_group(proc)

    stop = vanish

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- services -------------------------------------------------------------------------------------
    def service_for(self, service: str):
        if service.startswith("shell") and ":" in service:
            return self._shell_service
        if service.startswith("exec:"):
            return self._shell_service
        if service == "sync:":
            return self._sync_service
        return None

    def _shell_service(self, stream: _Stream, service: str) -> None:
        head, _, command = service.partition(":")
        args = head.split(",")[1:]
        v2 = "v2" in args
        if head == "exec":
            v2 = False
        stall = any(command.strip().startswith(word) for word in self.faults.stall_commands)
        if stall:
            command = "sleep 3600"
        if not command.strip():
            command = "sh"  # interactive shell: stdin comes from the stream
        is_benchmark = _RUNS_BENCHMARK.search(command) is not None
        run = 0
        if is_benchmark:
            with self._lock:
                self.benchmark_runs += 1
                run = self.benchmark_runs
            if self.faults.stall_benchmark_run == run:
                command = "sleep 3600"
        proc = subprocess.Popen(
            ["/bin/sh", "-c", map_command(command, self.sandbox)], cwd=self.sandbox, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if (v2 or head == "exec") else subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        stream.on_close.append(lambda: _kill_group(proc))
        if is_benchmark and self.faults.vanish_on_benchmark_run == run:
            threading.Timer(self.faults.vanish_delay_s, self.vanish).start()

        threading.Thread(target=self._feed_stdin, args=(stream, proc, v2), daemon=True).start()
        pumps = [threading.Thread(target=self._pump, args=(stream, proc.stdout, p.SHELL_STDOUT, v2), daemon=True)]
        if v2 and proc.stderr is not None:
            pumps.append(threading.Thread(target=self._pump, args=(stream, proc.stderr, p.SHELL_STDERR, v2),
                                          daemon=True))
        for pump in pumps:
            pump.start()
        code = proc.wait()
        if code < 0:  # killed by a signal: adbd reports 0x80 | signal, as a shell does
            code = 0x80 | -code
        for pump in pumps:
            pump.join()
        with self._lock:
            self._procs.discard(proc)
        if v2 and not stream.closed:
            stream.write(p.shell_packet(p.SHELL_EXIT, bytes([code & 0xFF])))

    def _pump(self, stream: _Stream, pipe, packet_id: int, v2: bool) -> None:
        try:
            while chunk := os.read(pipe.fileno(), 64 * 1024):
                chunk = unmap_output(chunk, self.sandbox)
                stream.write(p.shell_packet(packet_id, chunk) if v2 else chunk)
        except (StreamClosed, OSError):
            pass

    def _feed_stdin(self, stream: _Stream, proc: subprocess.Popen, v2: bool) -> None:
        assert proc.stdin is not None
        try:
            if not v2:
                while (chunk := stream.read_some()) is not None:
                    proc.stdin.write(chunk)
                    proc.stdin.flush()
                return
            while True:
                packet_id, length = struct.unpack("<BI", stream.read_exact(5))
                data = stream.read_exact(length) if length else b""
                if packet_id == p.SHELL_STDIN:
                    proc.stdin.write(data)
                    proc.stdin.flush()
                elif packet_id == p.SHELL_CLOSE_STDIN:
                    break
        except (StreamClosed, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def _sync_service(self, stream: _Stream, _service: str) -> None:
        while True:
            request, length = struct.unpack("<4sI", stream.read_exact(8))
            path = stream.read_exact(length).decode(errors="replace") if length else ""
            if request == b"QUIT":
                return
            if request == b"STAT":
                stream.write(b"STAT" + _stat_v1(device_to_host(path, self.sandbox)))
            elif request in (b"STA2", b"LST2"):
                stream.write(request + _stat_v2(device_to_host(path, self.sandbox), follow=request == b"STA2"))
            elif request == b"LIST":
                self._sync_list(stream, device_to_host(path, self.sandbox))
            elif request == b"SEND":
                self._sync_send(stream, path)
            elif request == b"RECV":
                self._sync_recv(stream, device_to_host(path, self.sandbox))
            else:
                _sync_fail(stream, f"unknown sync request {request!r}")
                return

    def _sync_list(self, stream: _Stream, folder: Path) -> None:
        names = [".", ".."] + (sorted(os.listdir(folder)) if folder.is_dir() else [])
        for name in names:
            try:
                st = os.lstat(folder / name)
            except OSError:
                continue
            encoded = name.encode()
            stream.write(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size & 0xFFFFFFFF,
                                               int(st.st_mtime), len(encoded)) + encoded)
        stream.write(b"DONE" + bytes(16))

    def _sync_send(self, stream: _Stream, spec: str) -> None:
        device_path, _, mode_text = spec.rpartition(",")
        target = device_to_host(device_path or spec, self.sandbox)
        mode = int(mode_text) if mode_text.isdigit() else 0o644
        limit = self.faults.vanish_after_sync_bytes
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            while True:
                kind, value = struct.unpack("<4sI", stream.read_exact(8))
                if kind == b"DATA":
                    data = stream.read_exact(value)
                    if limit is not None and self.sync_bytes + len(data) >= limit:
                        handle.write(data[: max(0, limit - self.sync_bytes)])
                        handle.flush()
                        self.sync_bytes = limit
                        self.vanish()
                        raise StreamClosed()
                    handle.write(data)
                    self.sync_bytes += len(data)
                elif kind == b"DONE":
                    break
                else:
                    _sync_fail(stream, f"unexpected {kind!r} during SEND")
                    return
        os.chmod(target, mode & 0o7777)
        os.utime(target, (value, value))
        stream.write(b"OKAY" + bytes(4))

    def _sync_recv(self, stream: _Stream, source: Path) -> None:
        if not source.is_file():
            _sync_fail(stream, "No such file or directory")
            return
        with open(source, "rb") as handle:
            while chunk := handle.read(p.SYNC_DATA_MAX):
                stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        stream.write(b"DONE" + bytes(4))


def _sync_fail(stream: _Stream, message: str) -> None:
    encoded = message.encode()
    stream.write(b"FAIL" + struct.pack("<I", len(encoded)) + encoded)


def _stat_v1(path: Path) -> bytes:
    try:
        st = os.lstat(path)
    except OSError:
        return bytes(12)
    return struct.pack("<III", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))


def _stat_v2(path: Path, follow: bool) -> bytes:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        return struct.pack("<IQQIIIIQqqq", exc.errno or 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return struct.pack("<IQQIIIIQqqq", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                       st.st_size, int(st.st_atime), int(st.st_mtime), int(st.st_ctime))


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a shell command and everything it started (its own session), as adbd does when a stream closes."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 2.0
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
