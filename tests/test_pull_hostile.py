"""`sdk-build pull` against servers that lie, trickle, redirect and flood, and onto disks that fill or refuse writes.

The servers are written here byte by byte (`pull_support.HostileHost`); the client is the real CLI or `pull()`.
What must hold: a remote catalog can only lead to http(s) resources; no transfer can be held open by trickling;
a malformed or huge catalog is refused before anything acts on it; every failure is one line naming the cause,
with text from outside printed harmless; nothing is written outside `--output`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fs_support import fill, tmpfs
from pull_support import HostileHost, http_answer

from sdk_build.architecture import GEMMA3_270M
from sdk_build.artifacts.catalog import Selection, build_catalog
from sdk_build.artifacts.manifest import BundleEntry
from sdk_build.convert.bundle import PromptTemplate
from sdk_build.distribute.pull import plan, pull
from sdk_build.errors import CatalogError, PullError

ROOT = Path(__file__).resolve().parents[1]
PROMPTLY_S = 60.0  # generous bound for "does not hang": the guards act within a few seconds


def entry(name: str, data: bytes, **changes: Any) -> BundleEntry:
    fields: dict[str, Any] = {
        "file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "model": "gemma3-270m",
        "quantization": "dynamic_int8", "ekv": 1024, "prefill_lengths": [32], "target": "android-cpu",
        "format": "task", "instruction_tuned": False, "start_token": "<bos>", "stop_tokens": ["<eos>"],
        "prompt_template": PromptTemplate().to_dict(), "checkpoint": {"ref": "random:gemma3-270m", "fingerprint": "f"},
        "spec_fingerprint": "s", "tool_versions": {}, "build_seconds": 0.0, "peak_rss_bytes": 0,
        "created_utc": "2026-01-01T00:00:00Z",
    }
    fields.update(changes)
    return BundleEntry(**fields)


def catalog_bytes(*bundles: tuple[BundleEntry, str]) -> bytes:
    """A valid catalog for `bundles` (entry, url)."""
    urls = {e.file: url for e, url in bundles}
    return json.dumps(build_catalog([e for e, _ in bundles], url_for=lambda e: urls[e.file])).encode()


def serve(body: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return lambda sock, head: sock.sendall(http_answer(body, headers=headers))


def cli(*args: str, timeout: float = PROMPTLY_S) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "sdk_build", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout + 60, check=False, env={**os.environ, "GEMMA_EDGE_QUIET": "1"})
    return result, time.monotonic() - started


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("sdk-build: error:") for line in lines), result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr and "\x1b" not in result.stdout
    return lines


# ---- a remote catalog may only lead to remote http(s) resources ----


def test_a_remote_catalog_cannot_make_pull_copy_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"private key material\n" * 10)
    data = secret.read_bytes()
    names = ["local.task", "upper.task", "relative-ok.task"]
    bundles = [
        (entry(names[0], data), secret.as_uri()),
        (entry(names[1], data), secret.as_uri().replace("file:", "FILE:")),
        (entry(names[2], data), "/files/ok.task"),
    ]
    with HostileHost({"/catalog.json": serve(catalog_bytes(*bundles)), "/files/ok.task": serve(data)}) as host:
        result, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(tmp_path / "dest"))
    lines = error_lines(result)
    assert result.returncode == 1 and len(lines) == 2
    assert all("may only lead to http or https" in line for line in lines)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["relative-ok.task"]  # the http one only


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/x.task", "file:///etc/passwd", "gopher://127.0.0.1/x"])
def test_redirects_are_followed_only_to_http(tmp_path: Path, target: str) -> None:
    data = b"bundle bytes"
    routes = {
        "/redirect": lambda sock, head: sock.sendall(http_answer(b"", "302 Found", {"Location": target})),
    }
    with HostileHost(routes) as host:
        routes["/catalog.json"] = serve(catalog_bytes((entry("x.task", data), host.base_url + "/redirect")))
        report = pull(host.base_url + "/catalog.json", tmp_path / "dest", Selection(), retries=0, timeout=5)
    [(name, message)] = report.failures
    assert name == "x.task" and ("only http(s) is followed" in message or "not allowed" in message), message
    assert not (tmp_path / "dest" / "x.task").exists()


# ---- no transfer can be held open by trickling ----


def trickle_body(total: int):  # type: ignore[no-untyped-def]
    def handler(sock, head):  # type: ignore[no-untyped-def]
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n".encode())
        for _ in range(total):
            sock.sendall(b"x")
            time.sleep(0.2)

    return handler


def trickle_head(sock, head):  # type: ignore[no-untyped-def]
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 5000:
        sock.sendall(bytes([byte]))
        time.sleep(0.1)


@pytest.mark.parametrize("handler", [trickle_body(10**6), trickle_head], ids=["body", "headers"])
def test_a_trickling_server_cannot_hold_a_pull(tmp_path: Path, handler: Any) -> None:
    data = b"x" * 10**6
    routes = {"/x.task": handler}
    with HostileHost(routes) as host:
        routes["/catalog.json"] = serve(catalog_bytes((entry("x.task", data), "/x.task")))
        started = time.monotonic()
        report = pull(host.base_url + "/catalog.json", tmp_path / "dest", Selection(), retries=1, timeout=2)
        seconds = time.monotonic() - started
    [(_, message)] = report.failures
    assert "stalled" in message, message
    assert seconds < PROMPTLY_S


def test_a_trickled_catalog_cannot_hold_a_pull(tmp_path: Path) -> None:
    with HostileHost({"/catalog.json": trickle_body(10**6)}) as host:
        started = time.monotonic()
        with pytest.raises(PullError, match="stalled"):
            plan(host.base_url + "/catalog.json", Selection(), timeout=2)
        assert time.monotonic() - started < PROMPTLY_S


# ---- a catalog is checked before anything acts on it, and is bounded ----


def malformed_catalogs() -> dict[str, bytes]:
    good = json.loads(catalog_bytes((entry("x.task", b"data"), "x.task")))

    def with_bundle(**changes: Any) -> bytes:
        doc = json.loads(json.dumps(good))
        doc["bundles"][0].update(changes)
        return json.dumps(doc).encode()

    return {
        "ekv a string": with_bundle(ekv="1024"),
        "targets a number": with_bundle(targets=5),
        "bytes a boolean": with_bundle(bytes=True),
        "model a string": with_bundle(model="gemma"),
        "quantization a list": with_bundle(quantization=["dynamic_int8"]),
        "memory missing": json.dumps({**good, "bundles": [{k: v for k, v in good["bundles"][0].items()
                                                            if k != "memory"}]}).encode(),
        "bundles an object": json.dumps({**good, "bundles": {}}).encode(),
        "a list": b"[1, 2, 3]",
        "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
        "deep inside a bundle": with_bundle(extra=None)[:-3] + b', "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}",
        "not json": b"<html>hello</html>",
        "not utf-8": b'{"schema": "\xff\xfe"}',
    }


@pytest.mark.parametrize("case", list(malformed_catalogs()))
def test_a_malformed_catalog_is_one_line(tmp_path: Path, case: str) -> None:
    body = malformed_catalogs()[case]
    with HostileHost({"/catalog.json": serve(body)}) as host:
        result, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(tmp_path / "dest"))
    assert result.returncode == 2
    assert len(error_lines(result)) == 1
    local = tmp_path / "catalog.json"
    local.write_bytes(body)
    result, _ = cli("pull", "--from", str(local), "--list", "--output", str(tmp_path / "dest"))
    assert result.returncode == 2 and len(error_lines(result)) == 1


def endless_json(sock, head):  # type: ignore[no-untyped-def]
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    sock.sendall(b'{"schema": "gemma-edge.catalog/1", "pad": "')
    chunk = b"a" * (1 << 20)
    for _ in range(300):  # 300 MiB, if nobody stops reading
        sock.sendall(chunk)


def test_a_huge_catalog_is_not_read_whole(tmp_path: Path) -> None:
    announced = lambda sock, head: sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\nConnection: close\r\n\r\n{"
    )
    with HostileHost({"/endless.json": endless_json, "/announced.json": announced}) as host:
        started = time.monotonic()
        with pytest.raises(CatalogError, match="more than 16 MiB"):
            plan(host.base_url + "/endless.json", Selection(), timeout=10)
        with pytest.raises(CatalogError, match="announces 314572800 bytes"):
            plan(host.base_url + "/announced.json", Selection(), timeout=10)
        assert time.monotonic() - started < PROMPTLY_S
        time.sleep(0.5)
        assert host.sent["/endless.json"] < 64 * 2**20  # stopped near the limit, not at 300 MiB


# ---- names and text from outside ----


@pytest.mark.parametrize("name", ["a\x1b[2Jb.task", "evil\u202etxt.task", "line\nbreak.task", "../up.task", ".hidden"])
def test_unsafe_names_in_a_catalog_are_refused_and_printed_harmless(tmp_path: Path, name: str) -> None:
    doc = json.loads(catalog_bytes((entry("x.task", b"data"), "x.task")))
    doc["bundles"][0]["file"] = name
    with HostileHost({"/catalog.json": serve(json.dumps(doc).encode())}) as host:
        result, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(tmp_path / "dest"))
    [line] = error_lines(result)
    assert result.returncode == 2 and "not a plain file name" in line
    assert "\u202e" not in line and "\n" not in line.strip()
    assert not (tmp_path / "dest").exists() or not list((tmp_path / "dest").iterdir())


def test_text_from_outside_is_printed_without_escapes_or_markup(tmp_path: Path) -> None:
    data = b"bundle"
    shape = dataclasses.asdict(GEMMA3_270M)
    hostile = entry("plain.task", data, target="\x1b]0;owned\x07[bold red]target[/]", model="m\x1b[2J",
                    extra={"model_shape": shape})
    error_body = json.dumps({"error": "gone\x1b[2K\r\nsdk-build: all verified\x1b[31m"}).encode()
    routes = {
        "/catalog.json": serve(catalog_bytes((hostile, "/gone.task"))),
        "/gone.task": lambda sock, head: sock.sendall(http_answer(error_body, "410 Gone")),
    }
    with HostileHost(routes) as host:
        listed, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--list", "--output", str(tmp_path))
        pulled, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(tmp_path / "dest"))
    assert listed.returncode == 0 and "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "\\x1b]0;owned\\x07[bold red]target[/]" in listed.stdout  # shown as text, not obeyed
    [line] = error_lines(pulled)
    assert pulled.returncode == 1 and "gone\\x1b[2K\\x0d\\x0asdk-build: all verified" in line


# ---- local file-system failures ----


def test_dest_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    data = b"bundle"
    (tmp_path / "dest").write_text("a file")
    with HostileHost({"/catalog.json": serve(catalog_bytes((entry("x.task", data), "/x.task"))),
                      "/x.task": serve(data)}) as host:
        result, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(tmp_path / "dest"))
    [line] = error_lines(result)
    assert result.returncode == 2 and "is a file" in line


def test_a_read_only_dest_is_one_line(tmp_path: Path) -> None:
    data = b"bundle"
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as dest, HostileHost(
        {"/catalog.json": serve(catalog_bytes((entry("x.task", data), "/x.task"))), "/x.task": serve(data)}
    ) as host:
        result, _ = cli("pull", "--from", host.base_url + "/catalog.json", "--output", str(dest))
    [line] = error_lines(result)
    assert result.returncode == 2 and "not writable" in line


def test_a_disk_that_fills_during_the_download_is_one_line_and_the_partial_is_kept(tmp_path: Path) -> None:
    size = 24 * 2**20
    data = os.urandom(size)
    go_on = threading.Event()

    def two_halves(sock, head):  # type: ignore[no-untyped-def]
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".encode())
        sock.sendall(data[: 2**20])
        go_on.wait(timeout=60)
        sock.sendall(data[2**20 :])

    with tmpfs(tmp_path / "small", "100m") as dest, HostileHost(
        {"/catalog.json": serve(catalog_bytes((entry("x.task", data), "/x.task"))), "/x.task": two_halves}
    ) as host:
        process = subprocess.Popen(
            [sys.executable, "-m", "sdk_build", "pull", "--from", host.base_url + "/catalog.json", "--output",
             str(dest), "--retries", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "GEMMA_EDGE_QUIET": "1"},
        )
        partial = dest / ".x.task.partial"
        deadline = time.monotonic() + PROMPTLY_S
        while not (partial.is_file() and partial.stat().st_size >= 2**20) and time.monotonic() < deadline:
            time.sleep(0.05)
        fill(dest)  # another program takes the rest of the disk
        go_on.set()
        stdout, stderr = process.communicate(timeout=PROMPTLY_S)
        kept = partial.is_file() and partial.stat().st_size > 0
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    [line] = error_lines(result)
    assert result.returncode == 1 and "No space left on device" in line and "the disk is full" in line
    assert "run the same pull again to resume" in line and kept
