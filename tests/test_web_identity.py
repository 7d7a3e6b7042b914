"""The identity a bundle response carries is always that of the bytes it sends (real server on loopback).

A bundle rebuilt in place (same size, new bytes: the usual case) before its manifest entry catches up must not be
sent under the old ETag / X-Content-SHA256, or an `If-Range` resume joins old and new bytes; and a build publishing
file and entry together must never be seen half way by the server.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import LiveServer, list_bundle, live_server

from sdk_build.artifacts.manifest import load_manifest, publish_bundle

NAME = "bundle.task"
SIZE = 256 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(server: LiveServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def assert_identity_matches_body(status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
    """A whole body must hash to the sha256 its headers claim (ETag and X-Content-SHA256)."""
    assert status == 200, (status, body[:200])
    assert headers["X-Content-SHA256"] == sha(body)
    assert headers["ETag"] == f'"{sha(body)}"'


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Path, bytes]]:
    old = os.urandom(SIZE)
    list_bundle(tmp_path, NAME, old)
    with live_server({"BUNDLES_DIR": tmp_path}) as server:
        yield server, tmp_path, old


def replace_by_rename(folder: Path, data: bytes) -> None:
    """What a rebuild by any tool does: write a new file, rename it over the old one (the manifest is untouched)."""
    staged = folder / ".staged"
    staged.write_bytes(data)
    os.replace(staged, folder / NAME)


@pytest.mark.parametrize("how", ["rename", "in place"])
def test_new_bytes_are_never_sent_under_the_old_identity(served: tuple[LiveServer, Path, bytes], how: str) -> None:
    server, folder, old = served
    assert_identity_matches_body(*get(server, f"/bundles/{NAME}"))
    new = os.urandom(SIZE)
    if how == "rename":
        replace_by_rename(folder, new)
    else:
        with open(folder / NAME, "r+b") as handle:  # same inode, same size
            handle.write(new)
    for method in ("GET", "HEAD"):
        status, headers, body = get(server, f"/bundles/{NAME}", method=method)
        assert status == 409, (method, status)
        assert sha(old) not in (headers.get("ETag") or "") and body != new
    status, _, body = get(server, f"/bundles/{NAME}")
    assert "manifest says" in body.decode() and sha(new) in body.decode()
    # A resume with the old validator cannot join old and new bytes.
    status, headers, body = get(server, f"/bundles/{NAME}", {"Range": f"bytes={SIZE // 2}-", "If-Range": f'"{sha(old)}"'})
    assert status == 409 and new[SIZE // 2 :] not in body
    # /api/catalog leaves it out and says why.
    catalog = get(server, "/api/catalog")
    assert catalog[0] == 200 and b'"omitted"' in catalog[2] and NAME.encode() in catalog[2]


def test_once_published_the_new_bytes_carry_their_own_identity(served: tuple[LiveServer, Path, bytes]) -> None:
    server, folder, old = served
    new = os.urandom(SIZE)
    staged = folder / ".staged"
    staged.write_bytes(new)
    entry = load_manifest(folder).find(NAME)
    assert entry is not None
    entry.sha256 = sha(new)
    publish_bundle(folder, staged, entry)
    status, headers, body = get(server, f"/bundles/{NAME}")
    assert_identity_matches_body(status, headers, body)
    assert body == new
    # A resume against the old ETag restarts: the whole new file, under its own identity, never a 206.
    status, headers, body = get(server, f"/bundles/{NAME}", {"Range": f"bytes={SIZE // 2}-", "If-Range": f'"{sha(old)}"'})
    assert_identity_matches_body(status, headers, body)


def test_republishing_while_downloading_never_shows_a_file_without_its_entry(
    served: tuple[LiveServer, Path, bytes],
) -> None:
    """A builder publishes two same-size versions in turn; every answer is whole and identified, none a 409."""
    server, folder, old = served
    versions = [old, os.urandom(SIZE)]
    stop = threading.Event()
    published = 0

    def builder() -> None:
        nonlocal published
        while not stop.is_set():
            data = versions[published % 2]
            staged = folder / f".staged-{published}"
            staged.write_bytes(data)
            entry = load_manifest(folder).find(NAME)
            assert entry is not None
            entry.sha256 = sha(data)
            publish_bundle(folder, staged, entry)
            published += 1
            time.sleep(0.01)  # the builder must not starve the server of the GIL on a 2-core machine

    thread = threading.Thread(target=builder, daemon=True)
    thread.start()
    answers = 0
    deadline = time.monotonic() + 120
    try:
        # Until both sides have done enough rounds to interleave (however the scheduler favours one of them).
        while (answers < 40 or published < 10) and time.monotonic() < deadline:
            assert thread.is_alive(), "the builder thread died"
            status, headers, body = get(server, f"/bundles/{NAME}")
            assert status == 200, body[:300]
            assert_identity_matches_body(status, headers, body)
            assert body in versions
            answers += 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert published >= 10 and answers >= 10
