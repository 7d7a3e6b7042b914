"""Pushing through the real adb server: sha256 skip, and resuming a push the device interrupted."""
# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from adb_fixture.device import FakeAdbDevice, Faults
from adb_fixture.profile import DeviceProfile
from adb_fixture.pytest_support import (  # noqa: F401 - pytest fixtures
    _no_ambient_adb_env,
    adb_server,
    reattach,
    standin,
    standin_factory,
)

from android_bridge import shell
from android_bridge.discovery import open_device
from android_bridge.errors import DeviceDisconnectedError
from android_bridge.push import push_file

REMOTE = "/data/local/tmp/gemma-edge"
CHUNK = 256 * 1024


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.bin"
    path.write_bytes(os.urandom(4 * CHUNK + 1000))
    return path


def on_phone(phone: FakeAdbDevice, name: str) -> Path:
    return phone.sandbox / REMOTE.lstrip("/") / name


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_push_then_skip_when_sha256_matches(adb_server, standin, payload):
    device = open_device(adb_server.server, standin.serial)
    seen: list[tuple[int, int]] = []
    first = push_file(device, payload, REMOTE, chunk_bytes=CHUNK, progress=lambda d, t: seen.append((d, t)))
    assert not first.skipped and first.resumed_from == 0 and first.bytes_sent == payload.stat().st_size
    assert first.remote_path == f"{REMOTE}/bundle.bin"
    assert sha(on_phone(standin, "bundle.bin")) == sha(payload) == first.sha256
    assert seen[-1] == (payload.stat().st_size, payload.stat().st_size)
    assert sorted(p.name for p in on_phone(standin, "").iterdir()) == ["bundle.bin"]  # no partial left behind

    again = push_file(device, payload, REMOTE, chunk_bytes=CHUNK)
    assert again.skipped and again.bytes_sent == 0

    payload.write_bytes(payload.read_bytes()[:-1] + b"!")  # same size, different content
    changed = push_file(device, payload, REMOTE, chunk_bytes=CHUNK)
    assert not changed.skipped and sha(on_phone(standin, "bundle.bin")) == sha(payload)


def test_interrupted_push_resumes_where_it_stopped(adb_server, standin_factory, payload, tmp_path):
    total = payload.stat().st_size
    phone = standin_factory(sandbox=tmp_path / "phone", faults=Faults(vanish_after_sync_bytes=2 * CHUNK + 70_000))
    device = open_device(adb_server.server, phone.serial)
    with pytest.raises(DeviceDisconnectedError):
        push_file(device, payload, REMOTE, chunk_bytes=CHUNK, idle_timeout_s=10)
    partial = on_phone(phone, "bundle.bin.partial")
    assert partial.stat().st_size == 2 * CHUNK  # two whole chunks made it before the phone vanished
    assert not on_phone(phone, "bundle.bin").exists()

    # The phone comes back on the same port with the same storage; adb reconnects to it.
    back = standin_factory(sandbox=tmp_path / "phone", port=phone.port, attach=False)
    reattach(adb_server.server, back.serial)
    device = open_device(adb_server.server, back.serial)
    report = push_file(device, payload, REMOTE, chunk_bytes=CHUNK, idle_timeout_s=10)
    assert report.resumed_from == 2 * CHUNK
    assert report.bytes_sent == total - 2 * CHUNK
    assert sha(on_phone(back, "bundle.bin")) == sha(payload)
    assert sorted(p.name for p in on_phone(back, "").iterdir()) == ["bundle.bin"]


def test_torn_tail_is_cut_back_and_foreign_partial_discarded(adb_server, standin, payload):
    device = open_device(adb_server.server, standin.serial)
    folder = on_phone(standin, "")
    folder.mkdir(parents=True, exist_ok=True)
    data = payload.read_bytes()

    (folder / "bundle.bin.partial").write_bytes(data[: CHUNK + 5000])  # an append that died half way
    (folder / "bundle.bin.partial.sha256").write_text(sha(payload) + "\n")
    torn = push_file(device, payload, REMOTE, chunk_bytes=CHUNK)
    assert torn.resumed_from == CHUNK and sha(folder / "bundle.bin") == sha(payload)

    (folder / "bundle.bin").unlink()
    (folder / "bundle.bin.partial").write_bytes(b"x" * CHUNK)  # a partial of some other file
    (folder / "bundle.bin.partial.sha256").write_text("0" * 64 + "\n")
    foreign = push_file(device, payload, REMOTE, chunk_bytes=CHUNK)
    assert foreign.resumed_from == 0 and foreign.bytes_sent == len(data)
    assert sha(folder / "bundle.bin") == sha(payload)


def test_old_android_without_shell_v2_or_stat_v2(adb_server, standin_factory, payload):
    """Android < 7 has neither: exit codes come from the legacy shell, sizes from STAT v1."""
    phone = standin_factory(profile=DeviceProfile(features=("cmd",)))
    device = open_device(adb_server.server, phone.serial)
    result = shell.run(device, "echo legacy; exit 3", timeout_s=10)
    assert (result.exit_code, result.stdout.strip()) == (3, "legacy")
    report = push_file(device, payload, REMOTE, chunk_bytes=CHUNK)
    assert not report.skipped and sha(on_phone(phone, "bundle.bin")) == sha(payload)
    assert push_file(device, payload, REMOTE, chunk_bytes=CHUNK).skipped
