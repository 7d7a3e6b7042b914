"""What a Ray cluster's nodes run for the device lab: one actor per phone (or per host), and a task that lists phones.

Why an actor per phone: a phone takes one benchmark at a time, and an actor's calls run one after another, so the
driver can queue every bundle for every phone at once and each phone still runs them in turn. A phone's actor asks
for the custom resource `phone:SERIAL`, which only the host the phone is plugged into advertises (`ray start
--resources '{"phone:SERIAL": 1}'`), so Ray starts it there, where that host's adb server sees the phone. For `lab
host` and `lab gpu` there is one actor per node, pinned to it. Each runs the surface's ordinary runner through
`session.measure` (the local path, for one bundle at a time), so a result is what a local run on that host gives,
plus where it was measured (`environment.extra["ray"]`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from device_tests.errors import LabError
from device_tests.record import BenchmarkResult
from device_tests.runners.host import BundleInfo
from device_tests.session import LabRequest, measure
from sdk_build.executors.ray_tasks import Where, where

PHONE_RESOURCE = "phone:"
"""The prefix of a phone's custom resource: `phone:SERIAL` (the adb serial, as `adb devices` lists it)."""


@dataclasses.dataclass(frozen=True)
class LabRun:
    """One finished bundle on one actor: its results (one per precision on the GPU), where and how long."""

    results: list[BenchmarkResult]
    where: Where
    seconds: float


@dataclasses.dataclass(frozen=True)
class NodePhones:
    """What one node's adb server lists (`error`: why it could not be asked)."""

    where: Where
    serials: tuple[str, ...]
    error: str = ""


class LabActor:
    """Runs bundles on one phone or one host, on the node where that phone or host is."""

    def __init__(self, request: LabRequest) -> None:
        self.request = request  # executor "local", and for a phone exactly its serial

    def run(self, bundle: BundleInfo) -> LabRun:
        """Benchmark `bundle` here; the bundle must be at the same path here as on the driver."""
        here = where()
        if not Path(bundle.path).is_file():
            raise LabError(f"{bundle.path} does not exist on {here.host}: with --executor ray the --bundles folder "
                           "must be at the same path on every host that runs bundles (a shared folder, or copied)")
        started = time.monotonic()
        results: list[BenchmarkResult] = []
        measure(self.request, [bundle], results.append)
        for result in results:
            result.environment.extra["ray"] = {"node_id": here.node_id, "host": here.host, "ip": here.ip}
        return LabRun(results, here, time.monotonic() - started)


def phones_here(adb_host: str | None, adb_port: int | None) -> NodePhones:
    """The serials of the phones online on this node's adb server (the lab's --adb-host/--adb-port, else its
    defaults on that node)."""
    from android_bridge.discovery import list_devices
    from android_bridge.server import resolve_server

    here = where()
    try:
        devices = list_devices(resolve_server(adb_host, adb_port))
    except Exception as exc:  # noqa: BLE001 - no adb server on that node is an answer, not a failure of the run
        return NodePhones(here, (), str(exc))
    return NodePhones(here, tuple(sorted(d.serial for d in devices if d.state == "device")))
