"""Discovery through the real adb server: `adb connect` to the stand-in phone, and a second (remote) adb server."""
# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from adb_fixture.pytest_support import (  # noqa: F401 - pytest fixtures
    AdbServerProcess,
    _no_ambient_adb_env,
    adb_server,
    standin,
    standin_factory,
)

from android_bridge.discovery import connect, list_devices, open_device, pick_serial
from android_bridge.errors import AdbServerError, DeviceNotFoundError
from android_bridge.server import AdbServer, parse_server_socket, resolve_server

REPO = Path(__file__).resolve().parents[1]


def test_adb_connect_lists_the_standin_with_its_banner(adb_server, standin):
    devices = {d.serial: d for d in list_devices(adb_server.server)}
    seen = devices[standin.serial]
    assert seen.state == "device"
    assert seen.transport == "tcp"
    assert seen.product == "standin_arm64"
    assert seen.model.startswith("Stand_in_phone")  # adb turns other characters into underscores
    assert "device" in adb_server.adb("devices", "-l").stdout  # and the adb CLI agrees


def test_remote_adb_server_through_adb_server_socket(standin, monkeypatch):
    """A second adb server on another port stands for a farm's server: ADB_SERVER_SOCKET points the bridge at it."""
    remote = AdbServerProcess().start()
    try:
        monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:127.0.0.1:{remote.port}")
        server = resolve_server()
        assert server == AdbServer("127.0.0.1", remote.port)
        assert standin.serial not in {d.serial for d in list_devices(server)}
        connect(server, standin.serial)
        assert {d.serial: d.state for d in list_devices(server)}[standin.serial] == "device"
        env = {**remote.env(), "ADB_SERVER_SOCKET": f"tcp:127.0.0.1:{remote.port}"}
        out = subprocess.run([sys.executable, "-m", "android_bridge", "devices"], cwd=REPO, capture_output=True,
                             text=True, timeout=60, env=env, check=False)
        assert out.returncode == 0, out.stderr
        assert standin.serial in out.stdout and "tcp" in out.stdout
        # explicit host/port beats the environment
        assert resolve_server("127.0.0.1", 5999) == AdbServer("127.0.0.1", 5999)
    finally:
        remote.stop()


def test_open_device_connects_host_port_serials(adb_server, standin_factory):
    phone = standin_factory(attach=False)
    device = open_device(adb_server.server, phone.serial, timeout_s=10)
    assert device.serial == phone.serial
    assert {d.serial: d.state for d in list_devices(adb_server.server)}[phone.serial] == "device"


def test_pick_serial_takes_the_only_online_device(standin_factory, monkeypatch):
    lone = AdbServerProcess().start()
    try:
        with pytest.raises(DeviceNotFoundError, match="no device is online"):
            pick_serial(lone.server, None)
        phone = standin_factory(attach=False)
        connect(lone.server, phone.serial)
        assert pick_serial(lone.server, None) == phone.serial
        monkeypatch.setenv("ANDROID_SERIAL", "R5CX1234ABC")
        assert pick_serial(lone.server, None) == "R5CX1234ABC"
    finally:
        lone.stop()


def test_unknown_serial_is_a_clear_error(adb_server):
    start = time.monotonic()
    with pytest.raises(DeviceNotFoundError, match="NOSUCHPHONE"):
        open_device(adb_server.server, "NOSUCHPHONE", timeout_s=1.0)
    assert time.monotonic() - start < 5


def test_no_remote_server_says_what_to_run():
    with pytest.raises(AdbServerError, match="adb -a -P 9 server nodaemon"):
        list_devices(AdbServer("127.0.0.2", 9), timeout_s=1.0)


@pytest.mark.parametrize(("text", "expected"), [("tcp:5038", AdbServer("127.0.0.1", 5038)),
                                                ("tcp:lab.example:5037", AdbServer("lab.example", 5037))])
def test_parse_server_socket(text, expected):
    assert parse_server_socket(text) == expected


def test_parse_server_socket_rejects_garbage():
    with pytest.raises(AdbServerError, match="tcp:HOST:PORT"):
        parse_server_socket("localhost:5037")
