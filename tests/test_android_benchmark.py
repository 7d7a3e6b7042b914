"""Benchmarks of the tiny bundle through the real adb server on the stand-in phone (which runs host litert-lm)."""
# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from adb_fixture.device import Faults
from adb_fixture.profile import DeviceProfile, ThermalModel
from adb_fixture.pytest_support import _no_ambient_adb_env, adb_server, standin, standin_factory  # noqa: F401

from android_bridge.benchmark import run_android_benchmark
from android_bridge.errors import BenchmarkTimeoutError, DeviceDisconnectedError
from device_tests.record import BenchmarkResult

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER_BINARY = REPO / "tests/adb_fixture/litert_lm_main"
SMALL = {"prefill_tokens": 32, "decode_tokens": 16, "cooldown_poll_s": 0.2}


@pytest.fixture(scope="module")
def tiny_task(tiny_bundle_dir: Path) -> Path:
    return next(tiny_bundle_dir.glob("*.task"))


def manifest_entry(bundle: Path) -> dict:
    entries = json.loads((bundle.parent / "manifest.json").read_text())["bundles"]
    return next(e for e in entries if e["file"] == bundle.name)


def taskset_log(phone) -> list[dict]:
    path = phone.state / "taskset.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_benchmark_tiny_bundle(adb_server, standin, tiny_task):
    result = run_android_benchmark(standin.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, runs=2, warmup=1,
                                   adb_port=adb_server.port, timeout_s=120, **SMALL)
    entry = manifest_entry(tiny_task)
    assert result.status == "ok", result.message
    assert (result.bundle_file, result.bundle_sha256) == (tiny_task.name, entry["sha256"])
    assert (result.quantization, result.ekv, result.model) == ("dynamic_int8", 256, entry["model"])
    assert result.bundle_format == "task" and result.warmup_runs == 1 and result.started_utc
    assert (result.prefill_tokens, result.decode_tokens, result.precision) == (32, 16, "")
    assert len(result.samples) == 2
    for sample in result.samples:
        assert sample.prefill_tokens_per_s > 0 and sample.decode_tokens_per_s > 0
        assert sample.ttft_s is not None and sample.init_s is not None
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes > 10 * 2**20
    env = result.environment
    assert env.surface == "android" and env.backend == "cpu" and env.threads == 4
    assert env.device.startswith("gemma-edge Stand-in phone") and "QTI SM8650" in env.device
    assert env.os == "Android 14 (SDK 34)" and "status 0" in env.thermal
    assert env.extra["taskset_mask"] == "f0" and env.extra["stand_in"] is True
    assert [r["kind"] for r in env.extra["runs"]] == ["warmup", "measured", "measured"]
    runs = taskset_log(standin)
    assert len(runs) == 3 and {r["mask"] for r in runs} == {"f0"}
    assert runs[0]["argv"][0] == "./litert_lm_main"
    assert {"--benchmark", "--benchmark_prefill_tokens=32", "--benchmark_decode_tokens=16",
            "--report_peak_memory_footprint", "--num_cpu_threads=4", "--backend=cpu"} <= set(runs[0]["argv"])
    BenchmarkResult.from_dict(json.loads(json.dumps(result.to_dict())))  # the lab can read it back

    again = run_android_benchmark(standin.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, runs=1, warmup=0,
                                  adb_port=adb_server.port, timeout_s=120, **SMALL)
    assert again.status == "ok"
    assert again.environment.extra["pushes"]["bundle"]["skipped"] is True  # same sha256 on the phone
    assert again.environment.extra["pushes"]["binary"]["skipped"] is True


def test_waits_for_the_phone_to_cool_between_runs(adb_server, standin_factory, tiny_task):
    hot = DeviceProfile(thermal=ThermalModel(ambient_c=30.0, heat_per_run_c=4.0, cooling_tau_s=0.5))
    phone = standin_factory(profile=hot)
    result = run_android_benchmark(phone.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, runs=2, warmup=0,
                                   adb_port=adb_server.port, thermal_limit_c=31.5, timeout_s=120, **SMALL)
    assert result.status == "ok" and len(result.samples) == 2
    first, second = result.environment.extra["runs"]
    assert first["cooldown_waited_s"] == 0
    assert second["cooldown_waited_s"] > 0  # the first run heated it to ~34 C
    assert second["cooled"] and second["start_temp_c"] < 31.5


def test_device_vanishing_mid_run_keeps_finished_runs(adb_server, standin_factory, tiny_task):
    phone = standin_factory(faults=Faults(vanish_on_benchmark_run=3, vanish_delay_s=0.1))
    start = time.monotonic()
    with pytest.raises(DeviceDisconnectedError, match="disappeared during run 3/4") as caught:
        run_android_benchmark(phone.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, runs=3, warmup=1,
                              adb_port=adb_server.port, timeout_s=60, **SMALL)
    assert time.monotonic() - start < 60
    assert "went away while running `cd " in str(caught.value)  # it vanished during the benchmark command itself
    result = caught.value.result
    assert result is not None and result.status == "error" and "1 measured run(s) kept" in result.message
    assert len(result.samples) == 1 and result.samples[0].decode_tokens_per_s > 0
    assert result.environment.extra["runs"][-1]["error"] == "disconnected"


def test_a_hung_run_times_out_and_is_killed(adb_server, standin_factory, tiny_task):
    phone = standin_factory(faults=Faults(stall_benchmark_run=2))
    start = time.monotonic()
    with pytest.raises(BenchmarkTimeoutError, match="exceeded its time-out of 4 s") as caught:
        run_android_benchmark(phone.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, runs=3, warmup=0,
                              adb_port=adb_server.port, timeout_s=4, **SMALL)
    assert time.monotonic() - start < 20
    result = caught.value.result
    assert result is not None and len(result.samples) == 1
    assert result.environment.extra["runs"][-1]["error"] == "timeout"
    deadline = time.monotonic() + 5
    while phone.running_commands() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert phone.running_commands() == 0  # nothing left running on the phone


def test_gpu_the_phone_cannot_run_is_unsupported_not_a_crash(adb_server, standin_factory, tiny_task):
    phone = standin_factory(profile=DeviceProfile(gpu_driver=False))  # the engine finds no GPU it can use
    result = run_android_benchmark(phone.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, backend="gpu", runs=1,
                                   warmup=0, adb_port=adb_server.port, timeout_s=120, **SMALL)
    assert result.status == "unsupported" and result.samples == []
    assert "Failed to create engine" in result.message and result.environment.backend == "gpu"


def test_gpu_the_phone_can_run_is_measured(adb_server, standin, tiny_task):
    """The same phone with a GPU driver (the host's lavapipe): the GPU run is measured like a CPU one."""
    result = run_android_benchmark(standin.serial, tiny_task, binary_path=PLACEHOLDER_BINARY, backend="gpu", runs=1,
                                   warmup=0, adb_port=adb_server.port, timeout_s=120, **SMALL)
    assert result.status == "ok", result.message
    assert len(result.samples) == 1 and result.samples[0].decode_tokens_per_s > 0
    assert result.environment.backend == "gpu"


def test_cli_bench_writes_results_the_lab_reads(adb_server, standin, tiny_bundle_dir, tmp_path):
    out = tmp_path / "reports/android.json"
    proc = subprocess.run(
        [sys.executable, "-m", "android_bridge", "--adb-port", str(adb_server.port), "bench", "--serial",
         standin.serial, "--bundle-dir", str(tiny_bundle_dir), "--binary", str(PLACEHOLDER_BINARY), "--prefill", "32",
         "--decode", "16", "--runs", "1", "--warmup", "0", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=adb_server.env(), check=False)
    assert proc.returncode == 0, proc.stderr
    results = [BenchmarkResult.from_dict(item) for item in json.loads(out.read_text())]
    assert {Path(r.bundle_file).suffix for r in results} == {".task", ".litertlm"}
    assert all(r.status == "ok" and len(r.samples) == 1 for r in results)
    assert "| decode tok/s |" in proc.stdout and out.with_suffix(".md").exists()


def test_device_lab_android_session_against_the_standin(adb_server, standin, tiny_bundle_dir, tmp_path):
    """What `nox -s lab_android -- --serial 127.0.0.1:PORT` runs: the device lab, through this bridge, to its report."""
    proc = subprocess.run(
        [sys.executable, "-m", "device_tests.lab", "android", "--serial", standin.serial, "--binary",
         str(PLACEHOLDER_BINARY), "--bundles", str(tiny_bundle_dir), "--format", "task", "--runs", "1", "--warmup",
         "0", "--prefill", "32", "--decode", "16", "--report-dir", str(tmp_path), "--no-history"],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=adb_server.env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "lab-android-latest.json").exists() and (tmp_path / "lab-android-latest.html").exists()
    assert "Stand-in phone" in proc.stdout
