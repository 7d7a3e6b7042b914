"""A checkout without the web demo's npm packages: the server says so at start-up and the page shows it at once.

`python -m web_demo` runs for real with `--vendor-dir` pointing at an empty folder (what a checkout without
`npm ci` has); the page is opened in a real headless Chromium and must settle in its error state promptly, with the
server's words, instead of waiting for ever for a runtime that answers 503.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import list_bundle, requires_chromium

ROOT = Path(__file__).resolve().parents[1]
PROMPTLY_MS = 30_000  # generous: the page settles in well under a second once it knows


@pytest.fixture()
def server_without_runtime(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    bundles = tmp_path / "bundles"
    list_bundle(bundles, "x.task", b"\0\0\0\0bundle")
    empty = tmp_path / "node_modules" / "@mediapipe" / "tasks-genai"
    empty.mkdir(parents=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "web_demo", "--bundles", str(bundles), "--port", "0", "--vendor-dir", str(empty)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"on (http://[\d.]+:\d+)/", line)
        url = found.group(1) if found else None
    try:
        assert url, "".join(lines)
        process.startup_output = "".join(lines)  # type: ignore[attr-defined]
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_start_up_says_what_is_missing_and_how_to_install_it(server_without_runtime: tuple[str, subprocess.Popen]) -> None:
    url, process = server_without_runtime
    output = process.startup_output  # type: ignore[attr-defined]
    assert "not installed" in output and "npm ci" in output and "genai_bundle.mjs" in output
    with urllib.request.urlopen(url + "/api/health", timeout=30) as response:
        health = json.load(response)
    assert health["ok"] is True and health["runtime_installed"] is False  # bundles are still served
    assert "npm ci" in health["runtime_problem"] and health["runtime_problem"] in health["problems"]
    try:
        urllib.request.urlopen(url + "/vendor/tasks-genai/genai_bundle.mjs", timeout=30)
        raise AssertionError("the missing runtime was served")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503 and "npm ci" in exc.read().decode()


@requires_chromium
def test_the_page_shows_it_and_settles_promptly(server_without_runtime: tuple[str, subprocess.Popen]) -> None:
    from web_demo.automation import launch_browser

    url, _ = server_without_runtime
    with launch_browser() as context:
        page = context.new_page()
        page.goto(url + "/", wait_until="domcontentloaded")
        page.wait_for_function("document.body.dataset.state === 'error'", timeout=PROMPTLY_MS)
        message = page.inner_text("#error")
        assert "not installed" in message and "npm ci" in message
        assert page.is_disabled("#load")
