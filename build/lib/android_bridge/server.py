"""Which adb server to talk to: explicit host/port, `ADB_SERVER_SOCKET`, `ANDROID_ADB_SERVER_HOST/PORT`, 5037.

A remote adb server is how phone farms (DeviceFarmer/STF, cloud labs, a lab box with a USB hub) share
phones: the lab runs `adb -a -P 5037 server nodaemon` next to the phones and everyone else points
`ADB_SERVER_SOCKET=tcp:labhost:5037` at it. Like the `adb` command, the bridge starts a *local* server on
the requested port when none runs; it never pretends about a remote one (adbutils would quietly start a
local server on 5037 when any address is wrong, which hides the mistake), it says what to run there.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess

import adbutils

from android_bridge.errors import AdbServerError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5037


@dataclasses.dataclass(frozen=True)
class AdbServer:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"tcp:{self.host}:{self.port}"


def parse_server_socket(value: str) -> AdbServer:
    """Parse adb's `ADB_SERVER_SOCKET` syntax: `tcp:PORT` or `tcp:HOST:PORT`."""
    parts = value.strip().split(":")
    if parts[0] != "tcp" or len(parts) not in (2, 3) or not parts[-1].isdigit():
        raise AdbServerError(f"ADB_SERVER_SOCKET={value!r} is not 'tcp:PORT' or 'tcp:HOST:PORT'")
    host = parts[1] if len(parts) == 3 and parts[1] else DEFAULT_HOST
    return AdbServer(host, int(parts[-1]))


def resolve_server(host: str | None = None, port: int | None = None) -> AdbServer:
    """Explicit arguments win, then ADB_SERVER_SOCKET, then ANDROID_ADB_SERVER_HOST/PORT, then 127.0.0.1:5037."""
    if host is None and port is None and os.environ.get("ADB_SERVER_SOCKET"):
        return parse_server_socket(os.environ["ADB_SERVER_SOCKET"])
    env_port = os.environ.get("ANDROID_ADB_SERVER_PORT")
    return AdbServer(host or os.environ.get("ANDROID_ADB_SERVER_HOST") or DEFAULT_HOST,
                     port or (int(env_port) if env_port else DEFAULT_PORT))


def check_server(server: AdbServer, timeout_s: float = 3.0) -> None:
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout_s):
            pass
    except OSError as exc:
        hint = (f"start one with `adb -P {server.port} start-server`" if server.host in ("127.0.0.1", "localhost")
                else f"start one on {server.host} with `adb -a -P {server.port} server nodaemon`")
        raise AdbServerError(f"no adb server at {server} ({exc.strerror or exc}); {hint}") from exc


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def ensure_server(server: AdbServer, timeout_s: float = 3.0) -> None:
    """Check the server answers; start a local one (`adb -P PORT start-server`) if it does not and adb exists."""
    try:
        check_server(server, timeout_s)
        return
    except AdbServerError:
        adb = shutil.which("adb")
        if server.host not in LOCAL_HOSTS or adb is None:
            raise
    subprocess.run([adb, "-P", str(server.port), "start-server"], capture_output=True, timeout=30, check=False)
    check_server(server, timeout_s)


def client(server: AdbServer, timeout_s: float = 10.0) -> adbutils.AdbClient:
    """An adbutils client for `server`, after making sure the server is really there."""
    ensure_server(server, min(timeout_s, 3.0))
    return adbutils.AdbClient(host=server.host, port=server.port, socket_timeout=timeout_s)
