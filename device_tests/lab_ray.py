"""`lab android|host|gpu --executor ray|ray://HOST:PORT`: the lab on several hosts, one Ray actor per phone or host.

The driver (this process) connects as `sdk-build matrix --executor` does (`sdk_build.executors.ray_cluster.connect`).
For android it finds the phones (`--serial` repeated, else every phone a node's adb server lists that the node also
advertises as `phone:SERIAL`) and starts one `ray_workers.LabActor` per phone, pinned by that resource; for host and
gpu, one per alive node, pinned to it. It queues every selected bundle on every actor and hands each result to
`session.run_lab`'s judge as it arrives: one report and one history for the whole lab, with the verdicts and reports
of a local run. One line per finished (phone or host, bundle) names its host.

Bundles go by path: the --bundles folder (and --binary) must be at the same path on every host that runs them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from device_tests.errors import LabError
from device_tests.ray_workers import PHONE_RESOURCE, LabActor, LabRun, NodePhones, phones_here
from device_tests.record import BenchmarkResult
from device_tests.runners.host import BundleInfo
from device_tests.session import LabRequest
from sdk_build.errors import BuildError


def resource_fix(serial: str) -> str:
    """The `ray start` line that makes a host offer phone `serial` to the lab."""
    return f"ray start --address=HEAD:6379 --resources '{json.dumps({PHONE_RESOURCE + serial: 1})}'"


def connect_lab(address: str) -> Any:
    """Ray, connected to the cluster at `address` (the matrix executor's rules); a failure is a LabError."""
    from sdk_build.executors.ray_cluster import connect

    try:
        return connect(address)
    except BuildError as exc:
        raise LabError(str(exc)) from exc


def advertised_phones(ray: Any) -> dict[str, str]:
    """serial -> node id of every phone resource the alive nodes advertise."""
    found: dict[str, str] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for name in node.get("Resources", {}):
                if name.startswith(PHONE_RESOURCE):
                    found[name[len(PHONE_RESOURCE):]] = node["NodeID"]
    return found


def discover(ray: Any, request: LabRequest, log: Callable[[str], None]) -> list[str]:
    """The phones to run on when no --serial is given: on every alive node, a small task lists what its adb server
    sees; a phone counts when its own node advertises it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    advertised = advertised_phones(ray)
    listing = ray.remote(phones_here)
    refs = [listing.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(request.android_extra.get("adb_host"), request.android_extra.get("adb_port"))
            for n in ray.nodes() if n.get("Alive")]
    serials: list[str] = []
    for seen in ray.get(refs):
        assert isinstance(seen, NodePhones)
        if seen.error:
            log(f"lab: {seen.where.label}: no adb server answered ({seen.error})")
        for serial in seen.serials:
            if advertised.get(serial) == seen.where.node_id:
                serials.append(serial)
            else:
                log(f"lab: {seen.where.label} sees {serial} but does not advertise it; to use it, start Ray there "
                    f"with `{resource_fix(serial)}`")
    if not serials:
        listed = ", ".join(sorted(advertised)) or "none"
        raise LabError(f"no phone to run on: no node both lists a phone on its adb server and advertises it (phone "
                       f"resources in the cluster: {listed}); on each host with a phone run `{resource_fix('SERIAL')}`"
                       " (SERIAL as `adb devices` lists it), or name the phones with --serial")
    return sorted(serials)


def check_advertised(ray: Any, serials: list[str]) -> None:
    """Every --serial must be some node's `phone:SERIAL` resource, or its actor would wait for ever."""
    advertised = advertised_phones(ray)
    missing = [s for s in serials if s not in advertised]
    if missing:
        fixes = "; ".join(f"`{resource_fix(s)}`" for s in missing)
        raise LabError(f"no node of the Ray cluster advertises phone {', '.join(missing)} (advertised: "
                       f"{', '.join(sorted(advertised)) or 'none'}): on the host each is plugged into, start Ray with "
                       f"{fixes}")


RAY_SURFACES = ("android", "host", "gpu")


def measure_on_ray(request: LabRequest, bundles: list[BundleInfo],
                   on_result: Callable[[BenchmarkResult], None]) -> None:
    """Run every bundle on every phone (android) or every node (host, gpu), each in its own actor on its own host;
    results as they finish."""
    if request.surface not in RAY_SURFACES:
        raise LabError(f"--executor {request.executor} runs the {', '.join(RAY_SURFACES)} surfaces; run "
                       f"`lab {request.surface}` with --executor local")

    def log(line: str) -> None:
        print(line, flush=True)

    ray = connect_lab(request.executor)
    local = dataclasses.replace(request, executor="local", serial=None, serials=())
    remote = ray.remote(LabActor)
    actors: dict[str, Any] = {}
    if request.surface == "android":
        serials = list(dict.fromkeys(request.serials or ((request.serial,) if request.serial else ())))
        if serials:
            check_advertised(ray, serials)
        else:
            serials = discover(ray, request, log)
        for serial in serials:
            actors[serial] = remote.options(num_cpus=0, resources={PHONE_RESOURCE + serial: 1}).remote(
                dataclasses.replace(local, serial=serial))
    else:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node in (n for n in ray.nodes() if n.get("Alive")):
            label = f"{node.get('NodeManagerHostname', '')} (node {node['NodeID'][:8]})"
            actors[label] = remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                node["NodeID"], soft=False)).remote(local)
    pending = {actors[a].run.remote(b): (a, b) for a in actors for b in bundles}
    kind = "phone" if request.surface == "android" else "host"
    log(f"lab: {len(pending)} runs on {len(actors)} {kind}{'s' * (len(actors) != 1)} over Ray: {', '.join(actors)}")
    failures: list[str] = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name, bundle = pending.pop(done[0])
            try:
                run = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 - a RayTaskError wrapping the runner's error, or the actor lost
                error = _first_line(exc)
                failures.append(f"{name} {bundle.path.name}: {error}")
                log(f"lab: {name} {bundle.path.name}: FAILED: {error}")
                continue
            assert isinstance(run, LabRun)
            states = ", ".join(f"{r.precision + ' ' if r.precision else ''}{r.status}" for r in run.results)
            log(f"lab: {name} {bundle.path.name} on {run.where.label}: {states or 'no result'} in {run.seconds:.1f} s")
            for result in run.results:
                on_result(result)
    finally:
        for actor in actors.values():
            ray.kill(actor)
    if failures:
        raise LabError(f"{len(failures)} run(s) failed on the Ray cluster: " + "; ".join(failures))


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:500]
