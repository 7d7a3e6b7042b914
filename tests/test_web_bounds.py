"""What unauthenticated requests can make the server hold is bounded (the real `python -m web_demo` process).

Benchmark results are the one thing clients send: each is capped, all kept results together are capped in bytes
(oldest dropped), bodies above the cap are refused by the server before it reads them, and the process's memory
does not grow with what was posted.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import list_bundle

from web_demo import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
PER_RESULT = int(DEFAULT_CONFIG["MAX_CONTENT_LENGTH"])
ALL_RESULTS = int(DEFAULT_CONFIG["MAX_RESULTS_BYTES"])


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    list_bundle(tmp_path, "x.task", b"\0\0\0\0bundle")
    process = subprocess.Popen(
        [sys.executable, "-m", "web_demo", "--bundles", str(tmp_path), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"on (http://[\d.]+:\d+)/", line)
        url = found.group(1) if found else None
    try:
        assert url
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/api/bench-results", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text.startswith(b"{") else {"raw": text[:200].decode("latin-1")}


def numbers_result(index: int, size: int) -> bytes:
    """A result whose JSON is `size` bytes of small numbers: the shape that costs the most memory once parsed."""
    count = (size - 100) // 2
    return json.dumps({"ok": True, "index": index, "samples": [1] * count}, separators=(",", ":")).encode()


def test_posting_many_results_does_not_grow_the_server(server: tuple[str, int]) -> None:
    url, pid = server
    before = rss_bytes(pid)
    for index in range(150):  # 150 x 255 KiB = 37 MiB of JSON, more than twice what may be kept
        status, answer = post(url, numbers_result(index, PER_RESULT - 1024))
        assert status == 201, answer
    grown = rss_bytes(pid) - before
    with urllib.request.urlopen(url + "/api/bench-results", timeout=60) as response:
        listed = response.read()
    results = json.loads(listed)["results"]
    assert len(listed) <= ALL_RESULTS + 64 * 1024
    assert results[-1]["result"]["index"] == 149 and results[0]["result"]["index"] > 0  # oldest dropped first
    # Kept as text: bounded by ALL_RESULTS plus what parsing one request costs, not by what was posted.
    assert grown < 4 * ALL_RESULTS + 64 * 2**20, f"the server grew by {grown / 2**20:.0f} MiB"


def test_oversized_and_malformed_results_are_refused(server: tuple[str, int]) -> None:
    url, _ = server
    status, answer = post(url, numbers_result(0, PER_RESULT + 4096))
    assert status == 413
    status, answer = post(url, b"[" * 50_000 + b"]" * 50_000)  # nesting deeper than a parser recurses
    assert status == 400 and "JSON object" in answer["error"]
    status, answer = post(url, b'["not", "an", "object"]')
    assert status == 400


def test_a_huge_announced_body_is_refused_before_it_is_sent(server: tuple[str, int]) -> None:
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/bench-results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
