"""A real Ray cluster on loopback for tests: `ray start --head` plus a second `ray start --address` on this machine.

Shared by the matrix tests (tests/test_matrix_ray.py) and the device lab's (tests/test_lab_ray.py). Each node gets
1 CPU and may advertise custom resources (`phone:SERIAL`), which is what places the lab's phone actors.

Teardown stops only this cluster's processes, by process id (those whose command line names its GCS port or its
temporary folder, the workers and agents their raylets started, and their children), not `ray stop --force`, which
would also stop every other Ray cluster of this user on the machine (a test suite running beside this one).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
NODE_MEMORY = 6 * 2**30  # a tiny export declares about 4 GB (estimated_export_bytes), a bundle 1.5 GB


class Cluster(NamedTuple):
    address: str  # HOST:PORT of the head's GCS (what RAY_ADDRESS holds)
    client: str  # ray://HOST:PORT of the head's Ray client server


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_env(**extra: str) -> dict[str, str]:
    """The environment of `ray start` and of the drivers the tests run."""
    # Token authentication, as docs/ray.md asks of a real cluster: both nodes and every driver get the same token.
    # A fresh machine has no ~/.ray/auth_token, so the tests bring their own (one per test process).
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    return {**env, "PYTHONPATH": str(ROOT), "GEMMA_EDGE_QUIET": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": env.get("RAY_AUTH_TOKEN") or _TEST_TOKEN, **extra}


_TEST_TOKEN = secrets.token_hex(32)


def ray_start(arguments: list[str]) -> None:
    """`ray start ARGUMENTS`, failing with what Ray printed (its own reason) rather than only the exit status."""
    done = subprocess.run([str(RAY), "start", *arguments], env=ray_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise RuntimeError(f"ray start {' '.join(arguments)} exited {done.returncode}:\n{tail}")


@contextmanager
def two_node_cluster(resources: Sequence[dict[str, float]] = ({}, {})) -> Iterator[Cluster]:
    """A head node and a second node on this machine, each offering 1 CPU and 6 GiB to tasks; `resources[i]` are
    node i's custom resources (`ray start --resources`)."""
    port, client_port = free_port(), free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    common = ["--num-cpus=1", f"--memory={NODE_MEMORY}", "--object-store-memory=80000000",
              "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    own = [[f"--resources={json.dumps(dict(r))}"] if r else [] for r in resources]
    try:
        ray_start(["--head", f"--port={port}", f"--ray-client-server-port={client_port}", "--include-dashboard=false",
                   f"--temp-dir={temp}", *common, *own[0]])
        ray_start([f"--address=127.0.0.1:{port}", *common, *own[1]])
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while len(alive_nodes(address)) < 2:
            assert time.monotonic() < deadline, "the second Ray node did not join"
            time.sleep(1)
        yield Cluster(address, f"ray://127.0.0.1:{client_port}")
    finally:
        stop_cluster(port, temp)
        shutil.rmtree(temp, ignore_errors=True)


def alive_nodes(address: str) -> list[dict]:
    """The alive nodes of the cluster at `address`: {"node_id", "resources"} each (empty when it does not answer)."""
    code = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
            "print(json.dumps([{'node_id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() "
            "if n['Alive']]))")
    done = subprocess.run([sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if done.returncode == 0 and lines else []


def _processes() -> dict[int, tuple[int, str, str]]:
    """This user's processes: pid -> (parent pid, command line, environment), as far as /proc lets us read them."""
    found: dict[int, tuple[int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = (parent, command, environ)
    return found


def cluster_pids(port: int, temp: Path) -> set[int]:
    """The processes of the cluster whose GCS listens on `port` with temporary folder `temp`."""
    processes = _processes()
    marks = (f":{port} ", f":{port}\n", f"={port} ", str(temp))
    pids = {pid for pid, (_, command, _) in processes.items() if any(m in command + " " for m in marks)}
    raylets = {str(pid) for pid in pids if "raylet" in processes[pid][1]}
    pids |= {pid for pid, (_, _, env) in processes.items()
             if any(f"RAY_RAYLET_PID={r} " in env + " " for r in raylets)}
    grew = True
    while grew:  # and everything they started
        more = {pid for pid, (parent, _, _) in processes.items() if parent in pids} - pids
        pids |= more
        grew = bool(more)
    return pids - {os.getpid()}


def stop_cluster(port: int, temp: Path, grace_s: float = 10.0) -> None:
    """SIGTERM this cluster's processes, then SIGKILL what is left after `grace_s`."""
    pids = cluster_pids(port, temp)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in sorted(pids):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
