"""Bundle bodies under the production server (web_demo.wsgi_server: waitress + os.sendfile), byte for byte.

The server is the real one `python -m web_demo` runs, on loopback; the bundle is a few MiB of random bytes listed
in a manifest. What must hold whatever the send path: whole files and every kind of byte range arrive exactly,
a slow reader (many partial sends) still gets every byte, HEAD sends no body, and a bundle truncated in place
while it is being sent ends that connection early instead of leaving the server spinning. (Which bytes such a
client got is not defined: with sendfile, as with nginx, bytes already queued follow the file's new state; our
builds replace bundles by rename, which never changes an open file, and clients check the sha256 headers.)
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

import pytest

from sdk_build.artifacts.manifest import BundleEntry, update_manifest
from web_demo import create_app
from web_demo.file_body import FileSlice
from web_demo.wsgi_server import BundleChannel, make_server

SIZE = 5 * 2**20 + 12345  # not a multiple of any chunk size
NAME = "bench.task"


def entry(size: int, sha: str) -> BundleEntry:
    return BundleEntry(
        file=NAME, bytes=size, sha256=sha, model="test", quantization="none", ekv=0, prefill_lengths=[],
        target="test", format="task", instruction_tuned=False, start_token="", stop_tokens=[], prompt_template={},
        checkpoint={"ref": "test", "fingerprint": ""}, spec_fingerprint="", tool_versions={}, build_seconds=0.0,
        peak_rss_bytes=0, created_utc="1970-01-01T00:00:00Z",
    )  # fmt: skip


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    (tmp_path / NAME).write_bytes(data)
    update_manifest(tmp_path, entry(SIZE, hashlib.sha256(data).hexdigest()))
    return tmp_path, data


@contextlib.contextmanager
def production_server(directory: Path) -> Iterator[int]:
    server = make_server(create_app({"BUNDLES_DIR": directory}), "127.0.0.1", 0, threads=4)
    assert server.channel_class is BundleChannel
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        server.close()
        thread.join(timeout=5)


def get(
    port: int, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, f"/bundles/{NAME}", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_whole_file_arrives_exactly(bundle_dir: tuple[Path, bytes]) -> None:
    directory, data = bundle_dir
    with production_server(directory) as port:
        status, headers, body = get(port)
    assert status == 200
    assert int(headers["Content-Length"]) == SIZE
    assert body == data


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=0-1048575", 0, 2**20),
        ("bytes=1000-2000000", 1000, 2000001),
        (f"bytes={SIZE - 1}-", SIZE - 1, SIZE),
        ("bytes=-4097", SIZE - 4097, SIZE),
        (f"bytes=3000000-{SIZE + 999}", 3000000, SIZE),  # the end is clipped to the file
    ],
)
def test_ranges_arrive_exactly(bundle_dir: tuple[Path, bytes], range_header: str, start: int, stop: int) -> None:
    directory, data = bundle_dir
    with production_server(directory) as port:
        status, headers, body = get(port, {"Range": range_header})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert int(headers["Content-Length"]) == stop - start
    assert body == data[start:stop]


def test_conditional_answers_have_no_body(bundle_dir: tuple[Path, bytes]) -> None:
    directory, data = bundle_dir
    with production_server(directory) as port:
        status, headers, body = get(port, method="HEAD")
        assert (status, body, int(headers["Content-Length"])) == (200, b"", SIZE)
        etag = headers["ETag"]
        assert get(port, {"If-None-Match": etag})[0] == 304
        assert get(port, {"Range": f"bytes={SIZE}-"})[0] == 416
        status, _, body = get(port, {"Range": "bytes=10-19", "If-Range": '"not-the-etag"'})
        assert (status, body) == (200, data)


def test_slow_reader_gets_every_byte(bundle_dir: tuple[Path, bytes]) -> None:
    """A receive window far smaller than a send chunk forces many partial sends (sendfile returns early, the
    channel resumes). (An 8 KiB window made loopback crawl at delayed-ACK pace: a minute for 5 MiB.)"""
    directory, data = bundle_dir
    with production_server(directory) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET /bundles/{NAME} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if len(received) < 2**20:
                time.sleep(0.001)
        sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == data


def test_a_file_that_shrinks_mid_send_ends_the_connection(bundle_dir: tuple[Path, bytes]) -> None:
    directory, _ = bundle_dir
    with production_server(directory) as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(f"GET /bundles/{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        os.truncate(directory / NAME, 2**20)
        received = bytearray(first)
        while chunk := sock.recv(65536):  # the server closes the connection: recv returns b""
            received += chunk
        sock.close()
        body = bytes(received).partition(b"\r\n\r\n")[2]
        assert len(body) < SIZE  # a short body: the client knows the download failed
        # The server is still serving (and refuses the changed file with its clear error).
        assert get(port)[0] == 409


def test_file_slice_reads_seeks_and_resends(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(100_000)
    path.write_bytes(data)
    with FileSlice(path, 1000, 50_000) as part:
        assert part.seek(0, os.SEEK_END) == 50_000
        part.seek(0)
        first = bytes(part.read(30_000))
        assert first == data[1000:31_000]
        part.seek(10_000)  # back into the last chunk, as waitress does after a partial send
        again = bytes(part.read(30_000))
        assert again == data[11_000:31_000]  # the unsent rest of the chunk, no more
        rest = bytes(part.read())
        assert rest == data[31_000:51_000]
        assert part.read() == b""
        assert part.file_offset == 51_000
    assert part.closed
