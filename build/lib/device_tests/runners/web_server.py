"""Start and stop the web demo server (`python -m web_demo`) for the duration of a web lab run.

The lab serves the same folder the manifest came from, on a free loopback port, and stops only the process
it started.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from device_tests.errors import LabError

_URL = re.compile(r"(http://[0-9.]+:\d+)/")


@contextlib.contextmanager
def serve_bundles(
    bundles_dir: Path, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 60.0
) -> Iterator[str]:
    """Yield the base URL of a web_demo server on `bundles_dir`; the server is stopped on exit."""
    command = [sys.executable, "-m", "web_demo", "--bundles", str(bundles_dir), "--host", host, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    found: list[str] = []

    def _read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            match = _URL.search(line)
            if match and not found:
                found.append(match.group(1))

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not found:
            if process.poll() is not None or time.monotonic() > deadline:
                raise LabError("the web demo server did not start: " + " | ".join(lines[-5:]))
            time.sleep(0.1)
        yield found[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
