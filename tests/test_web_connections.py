"""Idle, slow and greedy clients against the production server (waitress + our connection rules) on loopback.

What must hold: hundreds of sockets that never send a byte, or trickle a request a byte at a time, do not stop the
server answering everyone else promptly; tricklers are closed once their request is overdue; and when every
connection is genuinely busy a newcomer is told so at once (503) instead of waiting in the backlog.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sdk_build.artifacts.manifest import BundleEntry, update_manifest
from web_demo import create_app
from web_demo.wsgi_server import ConnectionLimits, make_server

NAME = "bundle.task"
PROMPTLY_S = 15.0  # generous: a busy 2-core machine answers in milliseconds; stock waitress took ~120 s


def entry(data: bytes) -> BundleEntry:
    return BundleEntry(
        file=NAME, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), model="test", quantization="none",
        ekv=0, prefill_lengths=[], target="test", format="task", instruction_tuned=False, start_token="",
        stop_tokens=[], prompt_template={}, checkpoint={"ref": "test", "fingerprint": ""}, spec_fingerprint="",
        tool_versions={}, build_seconds=0.0, peak_rss_bytes=0, created_utc="1970-01-01T00:00:00Z",
    )  # fmt: skip


def bundle_dir(tmp_path: Path, size: int) -> bytes:
    data = os.urandom(size)
    (tmp_path / NAME).write_bytes(data)
    update_manifest(tmp_path, entry(data))
    return data


@contextlib.contextmanager
def running(directory: Path, limits: ConnectionLimits | None = None) -> Iterator[int]:
    server = make_server(create_app({"BUNDLES_DIR": directory}), "127.0.0.1", 0, threads=4, limits=limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        server.trigger.pull_trigger(lambda: [channel.close() for channel in list(server._map.values())])
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


def timed_get(port: int, path: str) -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROMPTLY_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        conn.close()


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def test_hundreds_of_idle_connections_do_not_deny_service(tmp_path: Path) -> None:
    """More idle sockets than the connection limit (the production defaults): normal requests stay prompt."""
    data = bundle_dir(tmp_path, 64 * 1024)
    limit = ConnectionLimits().connection_limit
    with running(tmp_path) as port:
        idle = idle_sockets(port, limit + 200)
        try:
            for _ in range(10):
                status, body, seconds = timed_get(port, "/api/health")
                assert status == 200 and b'"ok":true' in body.replace(b" ", b""), body
                assert seconds < PROMPTLY_S
                status, body, seconds = timed_get(port, f"/bundles/{NAME}")
                assert status == 200 and body == data and seconds < PROMPTLY_S
                idle += idle_sockets(port, 50)  # and the flood goes on while we ask
        finally:
            for sock in idle:
                sock.close()


def test_a_trickled_request_is_closed_when_overdue_and_others_stay_prompt(tmp_path: Path) -> None:
    bundle_dir(tmp_path, 1024)
    limits = ConnectionLimits(connection_limit=64, request_timeout_s=2.0, idle_timeout_s=2.0)
    with running(tmp_path, limits) as port:
        tricklers = idle_sockets(port, 200)  # three times the limit, all sending a header byte now and then
        stop = threading.Event()
        closed: set[int] = set()

        def trickle() -> None:
            request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
            position = 0
            while not stop.is_set() and position < len(request):
                for index, sock in enumerate(tricklers):
                    if index in closed:
                        continue
                    try:
                        sock.send(request[position : position + 1])
                    except OSError:
                        closed.add(index)
                position += 1
                time.sleep(0.2)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            for _ in range(5):
                status, _, seconds = timed_get(port, "/api/health")
                assert status == 200 and seconds < PROMPTLY_S
            # Every trickler is closed by the server (evicted or overdue), long before its 10,000-byte header is done.
            deadline = time.monotonic() + 30
            while len(closed) < len(tricklers) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(closed) == len(tricklers), f"{len(tricklers) - len(closed)} tricklers still connected"
        finally:
            stop.set()
            thread.join(timeout=5)
            for sock in tricklers:
                sock.close()


def test_when_every_connection_is_busy_a_newcomer_gets_503_at_once(tmp_path: Path) -> None:
    bundle_dir(tmp_path, 32 * 2**20)
    limits = ConnectionLimits(connection_limit=16)
    with running(tmp_path, limits) as port:
        readers = []
        try:
            for _ in range(16):  # downloads whose clients stop reading: busy connections, never evicted
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                sock.sendall(f"GET /bundles/{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                readers.append(sock)
            time.sleep(1)  # let each request become a response in progress
            status, body, seconds = timed_get(port, "/api/health")
            assert status == 503 and b"busy" in body and seconds < PROMPTLY_S
        finally:
            for sock in readers:
                sock.close()
        status, _, _ = timed_get(port, "/api/health")  # the readers gone, service is back
        assert status == 200


def test_the_limit_fits_the_descriptors_the_process_may_open() -> None:
    import resource

    from web_demo.wsgi_server import _descriptor_budget

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = _descriptor_budget(10**9)
    soft_now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft_now >= soft and 2 * budget + 256 <= soft_now
    assert _descriptor_budget(16) == 16
