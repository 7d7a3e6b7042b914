"""Device facts, shell exit codes and time-outs through the real adb server; parsers on real-format text."""
# ruff: noqa: F811 - pytest fixtures are imported by name and then requested as arguments

from __future__ import annotations

import time

import pytest
from adb_fixture.device import Faults
from adb_fixture.pytest_support import _no_ambient_adb_env, adb_server, standin, standin_factory  # noqa: F401

from android_bridge import shell
from android_bridge.discovery import open_device
from android_bridge.errors import CommandTimeoutError
from android_bridge.facts import big_cores, parse_cpu_max_freqs, parse_gles, read_facts
from android_bridge.output_parser import OutputParseError, parse_benchmark_output
from android_bridge.thermal import parse_battery_temperature, parse_thermalservice, read_thermal


def test_facts_through_adb(adb_server, standin):
    device = open_device(adb_server.server, standin.serial)
    facts = read_facts(device, timeout_s=20)
    assert facts.manufacturer == "gemma-edge" and facts.model.startswith("Stand-in phone")
    assert facts.soc == "QTI SM8650" and facts.board_platform == "pineapple"
    assert facts.abi == "arm64-v8a" and facts.android_release == "14" and facts.sdk == 34
    assert facts.ram_bytes == 11_718_520 * 1024
    assert facts.cpu_max_freq_khz[0] == 2_265_600 and len(facts.cpu_max_freq_khz) == 8
    assert facts.big_cores == [4, 5, 6, 7] and facts.big_core_mask == "f0"
    assert facts.gpu == "Qualcomm, Adreno (TM) 750"
    assert facts.thermal.status == 0 and facts.thermal.skin_c == pytest.approx(30.0)
    assert facts.thermal.battery_c == pytest.approx(29.0)


def test_shell_exit_code_stdout_stderr_and_device_paths(adb_server, standin):
    device = open_device(adb_server.server, standin.serial)
    result = shell.run(device, "cd /data/local/tmp && pwd && echo oops >&2; exit 7", timeout_s=10)
    assert result.exit_code == 7
    assert result.stdout.strip() == "/data/local/tmp"  # the sandbox never shows
    assert result.stderr.strip() == "oops"


def test_a_stalled_command_times_out(adb_server, standin_factory):
    phone = standin_factory(faults=Faults(stall_commands=("dumpsys",)))
    device = open_device(adb_server.server, phone.serial)
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError, match="did not finish within 1.5 s"):
        read_thermal(device, timeout_s=1.5)
    assert time.monotonic() - start < 4
    deadline = time.monotonic() + 5
    while phone.running_commands() and time.monotonic() < deadline:  # closing the stream kills it on the device
        time.sleep(0.1)
    assert phone.running_commands() == 0


THERMALSERVICE = """IsStatusOverride: false
Thermal Status: 2
Cached temperatures:
\tTemperature{mValue=99.0, mType=3, mName=skin-old, mStatus=0}
HAL Ready: true
Current temperatures from HAL:
\tTemperature{mValue=44.5, mType=0, mName=cpu-1-0-usr, mStatus=0}
\tTemperature{mValue=47.25, mType=0, mName=cpu-1-1-usr, mStatus=0}
\tTemperature{mValue=36.1, mType=2, mName=battery, mStatus=0}
\tTemperature{mValue=41.0, mType=3, mName=skin-therm, mStatus=2}
Current cooling devices from HAL:
"""


def test_parse_thermalservice_prefers_current_hal_values():
    reading = parse_thermalservice(THERMALSERVICE)
    assert reading.status == 2
    assert reading.skin_c == 41.0 and reading.cpu_max_c == 47.25 and reading.battery_c == 36.1
    assert reading.device_c == 41.0
    assert "moderate" in reading.describe()


def test_parse_battery_and_old_android_without_thermal_hal():
    assert parse_battery_temperature("  level: 80\n  temperature: 312\n") == 31.2
    assert parse_thermalservice("Can't find service: thermalservice\n").device_c is None


def test_big_cores_and_gles():
    assert big_cores(parse_cpu_max_freqs("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 1800000\n"
                                         "/sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq 1800000\n")) == [0, 1]
    assert big_cores({0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 3}) == [4, 5, 6, 7]
    mali = "GLES: ARM, Mali-G715-Immortalis MC11, OpenGL ES 3.2 v1.r38p1\n"
    assert parse_gles(mali) == "ARM, Mali-G715-Immortalis MC11"
    assert parse_gles("no gles here") == ""


# The format LiteRT-LM's litert_lm_main logs (runtime/engine/io_types.cc, litert_lm_lib.cc), one iteration.
LITERT_LM_MAIN_LOG = """I0000 00:00:1700000000.000000   4242 litert_lm_lib.cc:512] BenchmarkInfo:
  Init Phases (3):
    - Executor initialization: 812.50 ms
    - Model assets: 10.25 ms
    - Tokenizer initialization: 27.25 ms
--------------------------------------------------
  Time to first token: 0.41 s
--------------------------------------------------
  Prefill Turns (Total 1 turns):
    Prefill Turn 1: Processed 1024 tokens in 398.07ms duration.
      Prefill Speed: 2572.41 tokens/sec.
--------------------------------------------------
  Decode Turns (Total 1 turns):
    Decode Turn 1: Processed 256 tokens in 5.9s duration.
      Decode Speed: 43.39 tokens/sec.
--------------------------------------------------
I0000 00:00:1700000001.000000   4242 litert_lm_lib.cc:530] Peak system ram usage: 1234.5MB.
I0000 00:00:1700000001.000000   4242 litert_lm_lib.cc:531] Memory usage: ...
"""


def test_parse_litert_lm_main_log():
    run = parse_benchmark_output(LITERT_LM_MAIN_LOG)
    assert run.prefill_tokens_per_s == 2572.41 and run.decode_tokens_per_s == 43.39
    assert run.ttft_s == 0.41 and run.init_s == pytest.approx(0.85)
    assert run.peak_memory_bytes == int(1234.5 * 1024 * 1024)


def test_parse_log_sink_and_python_cli_formats():
    sink = "Time to first token: 0.50 s\nPrefill speed turn 0: 900.00 tk/s\nDecode speed turn 0: 30.50 tk/s\n"
    assert parse_benchmark_output(sink).decode_tokens_per_s == 30.5
    cli = "Prefill speed:        1489.00 tokens/s\nDecode speed:         63.10 tokens/s\nInit time: 0.25 s\n"
    parsed = parse_benchmark_output(cli)
    assert (parsed.prefill_tokens_per_s, parsed.init_s, parsed.peak_memory_bytes) == (1489.0, 0.25, None)


def test_parse_failure_quotes_the_tail():
    with pytest.raises(OutputParseError, match="Main execution failed"):
        parse_benchmark_output("loading...\nMain execution failed: INTERNAL: no OpenCL\n")
