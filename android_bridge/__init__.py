"""Run gemma-edge bundles on Android phones over ADB and return an `AndroidRun` (the shape of the lab's records).

Built on adbutils and the real adb server (local, or remote through `ADB_SERVER_SOCKET`, which is how phone
farms share devices). Modules, one job each: `server` (which adb server), `discovery` (devices, connect),
`shell` (commands with time-outs and exit codes), `sync` + `push` (sha256-skipping, resumable pushes),
`facts` + `thermal` (what the phone is, how hot it is), `output_parser` (litert_lm_main's log), `benchmark`
(`run_android_benchmark`, the function the device lab calls) and `cli` (`python -m android_bridge`).
"""

from android_bridge.benchmark import run_android_benchmark
from android_bridge.errors import (
    AdbServerError,
    AndroidBridgeError,
    BenchmarkTimeoutError,
    CommandTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    PushError,
)

__all__ = [
    "AdbServerError",
    "AndroidBridgeError",
    "BenchmarkTimeoutError",
    "CommandTimeoutError",
    "DeviceDisconnectedError",
    "DeviceNotFoundError",
    "PushError",
    "run_android_benchmark",
]
