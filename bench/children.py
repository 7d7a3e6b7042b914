"""Servers started by a benchmark: a free loopback port, a child process that is always stopped, readiness polling.

Benchmarks start real servers (our waitress app, nginx, `nox -s demo`) as children. A child left running after a
failed run would hold its port and skew the next measurement, so `child_process` stops the child's whole process
group on every exit path, and `wait_until` turns "the server never came up" into an error that carries the
child's last output lines instead of a bare timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class ChildFailed(RuntimeError):
    """A child server exited or never became ready; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it; a tiny race with other programs remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc; empty elsewhere or when it has exited)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found.extend(int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return found


def tree_pids(root: int) -> Iterator[int]:
    """`root` and every live descendant, each once (a process tree is walked for its CPU time and its memory)."""
    pending, seen = [root], set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        yield pid
        pending.extend(child_pids(pid))


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by `root` and its live descendants (nginx: master + workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def log_tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def child_process(
    command: Sequence[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group with output in `log`; SIGTERM (then SIGKILL) the group on exit."""
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            list(command), stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        try:
            yield process
        finally:
            stop_group(process)


@contextlib.contextmanager
def streamed_child(
    command: Sequence[str],
    log: Path,
    on_line: Callable[[str], None],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """Like child_process, but every output line also goes to `on_line` as it arrives (progress, timestamps)."""
    with open(log, "w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True, text=True, errors="replace", bufsize=1,
        )  # fmt: skip

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                sink.flush()
                on_line(line.rstrip("\n"))

        reader = threading.Thread(target=pump, name="child-output", daemon=True)
        reader.start()
        try:
            yield process
        finally:
            stop_group(process)
            reader.join(timeout=10)


def stop_group(process: subprocess.Popen[bytes] | subprocess.Popen[str], grace_s: float = 10.0) -> None:
    """Stop the child's process group (nox -> python -> server are all in it), politely first."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    log: Path,
    *,
    what: str,
    timeout_s: float,
    poll_s: float = 0.2,
) -> float:
    """Poll `ready()` until true; return the seconds waited. Raise ChildFailed if the child exits or time runs out."""
    started = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - started
        if process.poll() is not None:
            raise ChildFailed(
                f"{what}: the process exited with {process.returncode} before it was ready:\n{log_tail(log)}"
            )
        if time.monotonic() - started > timeout_s:
            raise ChildFailed(f"{what}: not ready after {timeout_s:.0f} s:\n{log_tail(log)}")
        time.sleep(poll_s)


def http_ok(url: str, timeout_s: float = 2.0, method: str = "GET") -> bool:
    """True when `url` answers 2xx; connection refused, resets and HTTP errors are all 'not yet'."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False
