"""pytest fixtures: a private real adb server per test session, and a stand-in phone attached to it.

Every adb server here runs on a free port (`adb -P PORT start-server`) and is killed at the end, so these
tests never touch a developer's own server on 5037 nor collide with other tests running beside them.
Import the fixtures into a test module: `from adb_fixture.pytest_support import adb_server, standin`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from android_bridge.discovery import connect
from android_bridge.server import AdbServer

from .device import FakeAdbDevice, Faults
from .profile import DeviceProfile

ADB = shutil.which("adb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AdbServerProcess:
    """A real adb server on its own port, for one test session (or one test)."""

    def __init__(self, port: int | None = None) -> None:
        if ADB is None:
            pytest.skip("the real adb (Debian package `adb`) is not installed")
        self.port = port or free_port()
        self.server = AdbServer("127.0.0.1", self.port)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ADB_SERVER_SOCKET"}
        env["ANDROID_ADB_SERVER_PORT"] = str(self.port)
        return env

    def adb(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        assert ADB is not None
        return subprocess.run([ADB, "-P", str(self.port), *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self) -> AdbServerProcess:
        started = self.adb("start-server")
        if started.returncode != 0:
            raise RuntimeError(f"adb -P {self.port} start-server failed: {started.stderr}")
        return self

    def stop(self) -> None:
        self.adb("kill-server", timeout=10)


@pytest.fixture(scope="session")
def adb_server() -> Iterator[AdbServerProcess]:
    server = AdbServerProcess().start()
    try:
        yield server
    finally:
        server.stop()


class StandinFactory:
    """Makes stand-in phones attached to an adb server; all of them are unplugged at teardown."""

    def __init__(self, server: AdbServerProcess, root: Path) -> None:
        self.server, self.root = server, root
        self.devices: list[FakeAdbDevice] = []

    def __call__(self, *, sandbox: Path | None = None, port: int = 0, profile: DeviceProfile | None = None,
                 faults: Faults | None = None, attach: bool = True) -> FakeAdbDevice:
        sandbox = sandbox or self.root / f"phone{len(self.devices)}"
        device = FakeAdbDevice(sandbox, port=port, profile=profile, faults=faults).start()
        self.devices.append(device)
        if attach:
            reattach(self.server.server, device.serial)
        return device

    def close(self) -> None:
        for device in self.devices:
            device.stop()
            self.server.adb("disconnect", device.serial, timeout=10)


def reattach(server: AdbServer, serial: str, timeout_s: float = 15.0) -> None:
    """`adb connect` (again): after a device vanished adb may still hold an offline transport for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connect(server, serial, timeout_s=5.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            subprocess.run([ADB or "adb", "-P", str(server.port), "disconnect", serial], capture_output=True,
                           timeout=10, check=False)
            time.sleep(0.3)


@pytest.fixture
def standin_factory(adb_server: AdbServerProcess, tmp_path: Path) -> Iterator[StandinFactory]:
    factory = StandinFactory(adb_server, tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def standin(standin_factory: StandinFactory) -> FakeAdbDevice:
    """One stand-in phone, already `adb connect`ed to the session's adb server."""
    return standin_factory()


@pytest.fixture(autouse=True)
def _no_ambient_adb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their adb server explicitly; a developer's ADB_SERVER_SOCKET must not leak in."""
    monkeypatch.delenv("ADB_SERVER_SOCKET", raising=False)
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
