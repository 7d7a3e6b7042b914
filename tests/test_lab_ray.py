"""`lab android --executor ray` on a real two-node Ray cluster (loopback), with two stand-in phones.

Each node advertises one phone's resource (`phone:127.0.0.1:PORT`); both stand-ins hang off the same real adb server
(both nodes are this machine), so what the test checks is the placement: each phone's result must come from the
node that advertises it, and all of them land in one report. The lab runs as the real CLI in a subprocess.
"""
# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from adb_fixture.pytest_support import _no_ambient_adb_env, adb_server, free_port, standin_factory  # noqa: F401
from ray_support import ROOT, Cluster, alive_nodes, ray_env, two_node_cluster

pytest.importorskip("ray", reason="Ray is not installed: pip install 'gemma-edge[ray]'")

PLACEHOLDER_BINARY = ROOT / "tests/adb_fixture/litert_lm_main"


@pytest.fixture(scope="module")
def phone_ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture(scope="module")
def lab_cluster(phone_ports: tuple[int, int]) -> Iterator[Cluster]:
    """Node 0 advertises the first stand-in phone, node 1 the second."""
    with two_node_cluster([{f"phone:127.0.0.1:{port}": 1} for port in phone_ports]) as cluster:
        yield cluster


def _lab(cluster: Cluster, adb_port: int, bundles: Path, report: Path, *extra: str,
         client: bool = False) -> subprocess.CompletedProcess[str]:
    """The lab's android surface on the cluster: through RAY_ADDRESS (`--executor ray`), or `ray://` when `client`."""
    executor = cluster.client if client else "ray"
    command = [sys.executable, "-m", "device_tests.lab", "android", "--executor", executor, "--binary",
               str(PLACEHOLDER_BINARY), "--bundles", str(bundles), "--format", "task", "--runs", "1", "--warmup", "0",
               "--prefill", "32", "--decode", "16", "--report-dir", str(report), "--adb-port", str(adb_port), *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env=ray_env() if client else ray_env(RAY_ADDRESS=cluster.address))


def test_each_phone_runs_on_the_node_that_advertises_it_into_one_report(
    lab_cluster: Cluster, phone_ports: tuple[int, int], adb_server, standin_factory, tiny_bundle_dir: Path,
    tmp_path: Path,
) -> None:
    phones = [standin_factory(port=port) for port in phone_ports]
    report = tmp_path / "report"
    done = _lab(lab_cluster, adb_server.port, tiny_bundle_dir, report)  # no --serial: found on the nodes
    assert done.returncode == 0, done.stdout + done.stderr
    holder = {name[len("phone:"):]: node["node_id"] for node in alive_nodes(lab_cluster.address)
              for name in node["resources"] if name.startswith("phone:")}
    assert sorted(holder) == sorted(p.serial for p in phones) and len(set(holder.values())) == 2
    records = json.loads((report / "lab-android-latest.json").read_text())["records"]
    results = [r.get("result", r) for r in records]
    assert sorted(r["environment"]["extra"]["serial"] for r in results) == sorted(holder)
    for result in results:
        assert result["status"] == "ok", result["message"]
        assert result["environment"]["extra"]["ray"]["node_id"] == holder[result["environment"]["extra"]["serial"]]
    progress = [line for line in done.stdout.splitlines() if line.startswith("lab: 127.0.0.1:")]
    assert len(progress) == 2 and all(" on " in line and "node " in line for line in progress), done.stdout
    history = (report / "history.jsonl").read_text().splitlines()
    assert len(history) == 2  # one history for the whole lab


def test_a_serial_no_node_advertises_names_the_ray_start_fix(
    lab_cluster: Cluster, adb_server, tiny_bundle_dir: Path, tmp_path: Path,
) -> None:
    # through the head's Ray client port this time (--executor ray://HOST:PORT)
    done = _lab(lab_cluster, adb_server.port, tiny_bundle_dir, tmp_path, "--serial", "R5CT12345", "--no-history",
                client=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no node of the Ray cluster advertises phone R5CT12345" in done.stderr
    assert """ray start --address=HEAD:6379 --resources '{"phone:R5CT12345": 1}'""" in done.stderr


def test_host_lab_runs_once_on_every_node_into_one_report(lab_cluster: Cluster, tiny_bundle_dir: Path,
                                                          tmp_path: Path) -> None:
    command = [sys.executable, "-m", "device_tests.lab", "host", "--executor", "ray", "--bundles", str(tiny_bundle_dir),
               "--format", "task", "--runs", "1", "--warmup", "0", "--prefill", "32", "--decode", "16", "--threads",
               "1", "--report-dir", str(tmp_path), "--no-history"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env=ray_env(RAY_ADDRESS=lab_cluster.address))
    assert done.returncode == 0, done.stdout + done.stderr
    results = [r["result"] for r in json.loads((tmp_path / "lab-host-latest.json").read_text())["records"]]
    nodes = {node["node_id"] for node in alive_nodes(lab_cluster.address)}
    assert len(results) == 2 and all(r["status"] == "ok" for r in results)
    assert {r["environment"]["extra"]["ray"]["node_id"] for r in results} == nodes
    assert len([line for line in done.stdout.splitlines() if line.startswith("lab: ") and ".task on " in line]) == 2
