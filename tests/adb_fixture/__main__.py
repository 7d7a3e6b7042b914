"""Run the stand-in phone as a process: `python -m tests.adb_fixture --port N --sandbox DIR`.

Then `adb connect 127.0.0.1:N` and use it like a phone (see docs/android_bridge.md). It is not a phone:
see the package docstring.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from .device import FakeAdbDevice
from .profile import DeviceProfile, ThermalModel


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.adb_fixture", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--sandbox", type=Path, required=True, help="folder that stands for the phone's filesystem")
    parser.add_argument("--heat-per-run", type=float, default=0.0, help="degrees C each benchmark run adds")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    profile = DeviceProfile(thermal=ThermalModel(heat_per_run_c=args.heat_per_run))
    device = FakeAdbDevice(args.sandbox, port=args.port, profile=profile).start()
    print(f"stand-in phone (NOT a real device) listening on {device.serial}; sandbox {device.sandbox}", flush=True)
    print(f"next: adb connect {device.serial}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    device.stop()


if __name__ == "__main__":
    main()
