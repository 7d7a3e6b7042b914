"""What a Ray cluster's nodes run for the device lab: one actor per phone, and a small task that lists a node's phones.

Why an actor per phone: a phone takes one benchmark at a time, and an actor's calls run one after another, so the
driver can queue every bundle for every phone at once and each phone still runs them in turn. The actor asks for
the custom resource `phone:SERIAL`, which only the host the phone is plugged into advertises (`ray start
--resources '{"phone:SERIAL": 1}'`), so Ray starts it there, where that host's adb server sees the phone. It runs the
ordinary Android runner (`device_tests.runners.android.run_android`), so a result is the one a local run gives, plus
where it was measured (`environment.extra["ray"]`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from device_tests.errors import LabError
from device_tests.record import BenchmarkResult
from device_tests.runners.android import AndroidRunOptions, run_android
from device_tests.runners.host import BundleInfo
from sdk_build.executors.ray_tasks import Where, where

PHONE_RESOURCE = "phone:"
"""The prefix of a phone's custom resource: `phone:SERIAL` (the adb serial, as `adb devices` lists it)."""


@dataclasses.dataclass(frozen=True)
class PhoneRun:
    """One finished (phone, bundle): its result, where it ran and how long it took."""

    result: BenchmarkResult
    where: Where
    seconds: float


@dataclasses.dataclass(frozen=True)
class NodePhones:
    """What one node's adb server lists (`error`: why it could not be asked)."""

    where: Where
    serials: tuple[str, ...]
    error: str = ""


class PhoneActor:
    """Runs bundles on one phone, on the host it is plugged into."""

    def __init__(self, options: AndroidRunOptions) -> None:
        self.options = options

    def run(self, bundle: BundleInfo) -> PhoneRun:
        """Benchmark `bundle` on this actor's phone; the bundle must be at the same path here as on the driver."""
        here = where()
        if not Path(bundle.path).is_file():
            raise LabError(f"{bundle.path} does not exist on {here.host}: with --executor ray the --bundles folder "
                           "must be at the same path on every host with a phone (a shared folder, or copied there)")
        started = time.monotonic()
        result = run_android(bundle, self.options)
        result.environment.extra["ray"] = {"node_id": here.node_id, "host": here.host, "ip": here.ip}
        return PhoneRun(result, here, time.monotonic() - started)


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
