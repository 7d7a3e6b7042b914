"""A stand-in Android phone for tests: the device side of ADB on loopback, backed by a sandbox folder.

THIS IS NOT A PHONE and it is not an emulator. No phone or emulator can run on the machines these tests run
on, so `FakeAdbDevice` speaks the device half of the ADB protocol well enough that the *real* adb server
accepts it (`adb connect 127.0.0.1:PORT`), and `android_bridge` is tested through real adb and adbutils.
Its filesystem is a folder of this host, its shell is this host's `/bin/sh`, and its `litert_lm_main` is
this host's `litert-lm benchmark` (so numbers are x86-host numbers, not a phone's).

Standalone: `python -m tests.adb_fixture --port 5599 --sandbox /tmp/standin` (from the repository root).
"""

from .device import FakeAdbDevice, Faults
from .profile import DeviceProfile, ThermalModel

__all__ = ["DeviceProfile", "FakeAdbDevice", "Faults", "ThermalModel"]
