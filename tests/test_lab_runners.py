"""Runners exercised for real on the tiny bundle: litert-lm on this CPU, the demo page in Chromium."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from device_tests import verdicts as V
from device_tests.bundles import select_bundles
from device_tests.errors import LabError
from device_tests.lab import main as lab_main
from device_tests.runners.host import HostRunOptions, parse_benchmark_output, run_host_benchmark
from device_tests.session import LabRequest, run_lab

LITERT_LM_OUTPUT = """Benchmarking model: tiny.task
----- Results -----
Prefill speed:        89899.84 tokens/s
Decode speed:         12281.51 tokens/s
Init time:            0.0059 s
Time to first token:  0.0019 s
"""


def test_parse_litert_lm_output():
    sample = parse_benchmark_output(LITERT_LM_OUTPUT)
    assert (sample.prefill_tokens_per_s, sample.decode_tokens_per_s, sample.init_s, sample.ttft_s) == (
        89899.84,
        12281.51,
        0.0059,
        0.0019,
    )
    with pytest.raises(LabError, match="no prefill/decode speed"):
        parse_benchmark_output("Segmentation fault")
    # litert-lm 0.18.1 on a 1B ekv1280 .task with -p 1024: the decode silently does not run.
    silent = LITERT_LM_OUTPUT.replace("12281.51", "0.00").replace("0.0019", "0.0000")
    with pytest.raises(LabError, match="did not run"):
        parse_benchmark_output(silent)


def test_select_bundles_from_manifest(tiny_bundle_dir: Path):
    both = select_bundles(tiny_bundle_dir)
    assert {b.bundle_format for b in both} == {"task", "litertlm"}
    (task,) = select_bundles(tiny_bundle_dir, ["format=task", "quantization=dynamic_int8"])
    assert task.path.suffix == ".task" and task.ekv == 256 and task.prefill_signatures == (32, 128)
    with pytest.raises(LabError, match="no bundle .* matches"):
        select_bundles(tiny_bundle_dir, ["quantization=int4_qat"])
    with pytest.raises(LabError, match="unknown key"):
        select_bundles(tiny_bundle_dir, ["colour=blue"])


def test_host_lab_on_tiny_bundles(tiny_bundle_dir: Path, tmp_path: Path, capsys):
    report_dir = tmp_path / "reports"
    argv = [
        "host",
        "--bundles",
        str(tiny_bundle_dir),
        "--runs",
        "3",
        "--warmup",
        "1",
        "--prefill",
        "32",
        "--decode",
        "16",
        "--threads",
        "1",
        "--report-dir",
        str(report_dir),
    ]
    assert lab_main(argv) == 0
    out = capsys.readouterr().out
    document = json.loads((report_dir / "lab-host-latest.json").read_text())
    for record in document["records"]:  # each bundle's line states its record's verdict
        assert f"[{record['verdict'].upper()}] {record['result']['bundle_file']}" in out
    assert {r["result"]["bundle_format"] for r in document["records"]} == {"task", "litertlm"}
    for record in document["records"]:
        result = record["result"]
        assert result["status"] == "ok" and len(result["samples"]) == 3 and result["warmup_runs"] == 1
        assert all(s["prefill_tokens_per_s"] > 0 and s["decode_tokens_per_s"] > 0 for s in result["samples"])
        assert result["peak_memory_bytes"] > 10 * 2**20 and result["bundle_bytes"] > 100_000
        env = result["environment"]
        assert env["threads"] == 1 and env["extra"]["cpu_affinity"] == [
            sorted(env["extra"]["cpu_affinity_available"])[0]
        ]
        assert env["extra"]["runtime"].startswith("litert-lm ") and env["device"] and env["os"]
        assert record["checks"][0]["verdict"] == V.NO_BASELINE  # a tiny custom model has no published figure
    page = (report_dir / "lab-host-latest.html").read_text()
    assert "<svg" in page and "no published figure" in page
    # The second run compares with the first when the first became a reference (a good run: spread within the
    # policy's cv limit, which a busy machine may miss); either way the check says exactly which.
    first_entries = [json.loads(line) for line in Path(document["meta"]["history_path"]).read_text().splitlines()]
    lab_main(argv)
    document = json.loads((report_dir / "lab-host-latest.json").read_text())
    for record in document["records"]:
        check = record["checks"][-1]
        assert check["kind"] == "history"
        (first,) = [e for e in first_entries if e["result"]["bundle_file"] == record["result"]["bundle_file"]]
        if first["good"]:
            assert check["verdict"] != V.NO_HISTORY and check["reference"] == first["recorded_utc"]
            references = {m["metric"]: m["reference"] for m in check["metrics"]}
            assert references and all(first["medians"][k] == v for k, v in references.items())
        else:
            assert check["verdict"] == V.NO_HISTORY and check["reference"] == ""


def test_host_runner_refuses_more_tokens_than_the_kv_cache(tiny_bundle_dir: Path, tmp_path: Path):
    (bundle,) = select_bundles(tiny_bundle_dir, ["format=task"])
    result = run_host_benchmark(bundle, HostRunOptions(prefill_tokens=200, decode_tokens=100, runs=1, warmup=0))
    assert result.status == "error" and "exceed the bundle's KV cache (256)" in result.message
    outcome = run_lab(
        LabRequest(
            surface="host",
            bundles_dir=tiny_bundle_dir,
            report_dir=tmp_path,
            selectors=["format=task"],
            prefill_tokens=200,
            decode_tokens=100,
            runs=1,
            warmup=0,
        )
    )
    assert outcome.evaluations[0].verdict == V.ERROR and outcome.exit_code == 2


def _web_ready() -> str | None:
    if importlib.util.find_spec("web_demo") is None or importlib.util.find_spec("web_demo.automation") is None:
        return "web_demo.automation is not importable yet"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed"
    from web_demo import automation

    try:
        automation.find_chromium()
    except Exception as exc:  # ChromiumNotFound
        return f"no Chromium: {exc}"
    for package in ("@mediapipe/tasks-genai", "@litert-lm/core"):
        if not (Path(automation.__file__).parent / "node_modules" / package).is_dir():
            return f"the web demo's runtime {package} is not installed (npm ci in web_demo/)"
    return None


def test_web_lab_on_tiny_bundle(tiny_bundle_dir: Path, tmp_path: Path):
    reason = _web_ready()
    if reason:
        pytest.skip(reason)
    outcome = run_lab(
        LabRequest(
            surface="web",
            bundles_dir=tiny_bundle_dir,
            report_dir=tmp_path,
            runs=2,
            warmup=1,
            prefill_tokens=32,
            decode_tokens=16,
            timeout_s=300,
        )
    )
    # .task through MediaPipe and .litertlm through LiteRT-LM's web runtime, side by side, each at both precisions
    by_run = {(Path(ev.result.bundle_file).suffix, ev.result.precision): ev for ev in outcome.evaluations}
    assert set(by_run) == {(".task", "F16"), (".task", "F32"), (".litertlm", "F16"), (".litertlm", "F32")}
    for suffix, runtime in ((".task", "mediapipe"), (".litertlm", "litert-lm")):
        f32 = by_run[(suffix, "F32")].result
        assert f32.status == "ok", f32.message
        assert len(f32.samples) == 2 and all(s.decode_tokens_per_s > 0 for s in f32.samples)
        assert f32.environment.surface == "web" and f32.environment.browser and f32.environment.adapter
        assert f32.environment.extra["runtime"]["id"] == runtime and len(f32.environment.extra["texts"]) == 2
        f16 = by_run[(suffix, "F16")]
        if f16.result.environment.adapter.get("shaderF16") is False:
            assert f16.result.status == "unsupported" and f16.verdict == V.UNSUPPORTED
            assert f16.result.message.startswith("unsupported on this adapter")
    assert outcome.exit_code == 0
    page = outcome.html_path.read_text()
    assert "unsupported on this adapter" in page or f16.result.status == "ok"


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_host_command_is_pinned(tiny_bundle_dir: Path):
    from device_tests.runners.host import benchmark_command, find_litert_lm

    (bundle,) = select_bundles(tiny_bundle_dir, ["format=task"])
    command = benchmark_command(find_litert_lm(), bundle, HostRunOptions(threads=2), [0, 1])
    assert command[:3] == [shutil.which("taskset"), "-c", "0,1"]
    assert (
        command[command.index("--cpu-thread-count") + 1] == "2"
        and command[command.index("--max-num-tokens") + 1] == "256"
    )


def _android_ready() -> str | None:
    if shutil.which("adb") is None:
        return "adb is not installed"
    if (
        importlib.util.find_spec("android_bridge") is None
        or importlib.util.find_spec("android_bridge.benchmark") is None
    ):
        return "android_bridge.benchmark is not importable yet"
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_android_lab_through_the_bridge_on_the_stand_in_phone(tiny_bundle_dir: Path, tmp_path: Path):
    """Real adb + android_bridge against its stand-in phone (host-backed, NOT a phone): no verdict, ever."""
    reason = _android_ready()
    if reason:
        pytest.skip(reason)
    import subprocess

    try:
        from adb_fixture import FakeAdbDevice
    except ImportError:
        from tests.adb_fixture import FakeAdbDevice

    phone = FakeAdbDevice(tmp_path / "phone").start()
    adb_port = _free_port()  # a private adb server, so nothing else on this machine is disturbed
    binary = tmp_path / "litert_lm_main"
    binary.write_text("#!/bin/sh\n# the stand-in phone runs the host's litert-lm in place of this\n")
    try:
        request = LabRequest(
            surface="android",
            bundles_dir=tiny_bundle_dir,
            report_dir=tmp_path / "reports",
            selectors=["format=task"],
            runs=2,
            warmup=1,
            prefill_tokens=32,
            decode_tokens=16,
            serial=phone.serial,
            binary_path=str(binary),
            android_extra={"adb_port": adb_port, "thermal_limit_c": 95.0},
            timeout_s=120,
        )
        outcome = run_lab(request)
    finally:
        phone.stop()
        subprocess.run(["adb", "-P", str(adb_port), "kill-server"], capture_output=True, timeout=30, check=False)
    (ev,) = outcome.evaluations
    assert ev.result.status == "ok", ev.result.message
    assert len(ev.result.samples) == 2 and ev.result.environment.surface == "android"
    assert ev.result.model == "gemma3-custom" and ev.result.prefill_signatures == [32, 128]
    assert ev.verdict == V.NO_BASELINE and outcome.exit_code == 0  # no published row names a custom model
