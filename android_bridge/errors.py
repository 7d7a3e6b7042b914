"""User-facing errors of the Android bridge.

Each says what went wrong and what to do; the CLI prints one line. The two that interrupt a benchmark
(`DeviceDisconnectedError`, `BenchmarkTimeoutError`) carry the `AndroidRun` with the runs already
measured, because on a phone farm a half-finished session is still worth recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from android_bridge.result import AndroidRun


class AndroidBridgeError(Exception):
    """A problem with the adb setup, the device or the inputs, with an actionable message."""


class AdbServerError(AndroidBridgeError):
    """No adb server answers at the address given (or it answered nonsense)."""


class DeviceNotFoundError(AndroidBridgeError):
    """The serial is not attached to this adb server (or is offline/unauthorized)."""


class CommandTimeoutError(AndroidBridgeError):
    """A command on the device did not finish within its time-out."""


class DeviceCommandError(AndroidBridgeError):
    """A command on the device exited non-zero where success was required."""


class PushError(AndroidBridgeError):
    """A file could not be pushed, or arrived with the wrong sha256."""


class DeviceDisconnectedError(AndroidBridgeError):
    """The device went away (unplugged, adb restarted, rebooted) in the middle of the work."""

    def __init__(self, message: str, result: AndroidRun | None = None) -> None:
        super().__init__(message)
        self.result = result


class BenchmarkTimeoutError(CommandTimeoutError):
    """A benchmark run exceeded its time-out; `result` holds the runs finished before it."""

    def __init__(self, message: str, result: AndroidRun | None = None) -> None:
        super().__init__(message)
        self.result = result
