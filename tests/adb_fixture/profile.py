"""What the stand-in phone claims to be, and the sandbox folder laid out as its filesystem.

The defaults describe a plausible 2024 flagship (4 little + 3 big + 1 prime cores, 12 GB, Adreno GPU), but
`ro.product.manufacturer`/`model` say "stand-in" so no report can mistake it for a real phone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

STATE_NAME = ".fake_device"
WRAPPED_COMMANDS = ("getprop", "dumpsys", "nproc", "taskset")


@dataclasses.dataclass
class ThermalModel:
    ambient_c: float = 30.0
    heat_per_run_c: float = 0.0  # degrees added by each benchmark run
    cooling_tau_s: float = 5.0
    initial_excess_c: float = 0.0


@dataclasses.dataclass
class DeviceProfile:
    product: str = "standin_arm64"
    model: str = "Stand-in phone (host x86-64)"
    device: str = "standin"
    manufacturer: str = "gemma-edge"
    soc_manufacturer: str = "QTI"
    soc_model: str = "SM8650"
    board_platform: str = "pineapple"
    abi: str = "arm64-v8a"
    android_release: str = "14"
    sdk: int = 34
    mem_total_kb: int = 11_718_520
    mem_available_kb: int = 5_603_412
    cpu_max_freq_khz: tuple[int, ...] = (2_265_600,) * 4 + (3_014_400,) * 3 + (3_302_400,)
    gpu: str = "Qualcomm, Adreno (TM) 750, OpenGL ES 3.2 V@0762.10 (GIT@8a9d9f6a1b, Ia9d4b5cb1e, 1700208234)"
    thermal: ThermalModel = dataclasses.field(default_factory=ThermalModel)
    gpu_driver: bool = True
    """Whether the engine on this phone finds a GPU it can use: True lends it the host's Vulkan driver (lavapipe from
    scripts/setup.sh), False hides every Vulkan driver from it, as on a phone whose GPU the engine cannot run on."""
    features: tuple[str, ...] = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")

    def props(self) -> dict[str, str]:
        return {
            "ro.product.name": self.product,
            "ro.product.model": self.model,
            "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.brand": "gemma-edge",
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.soc.model": self.soc_model,
            "ro.board.platform": self.board_platform,
            "ro.hardware": self.board_platform,
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": f"{self.abi},armeabi-v7a,armeabi",
            "ro.build.version.release": self.android_release,
            "ro.build.version.sdk": str(self.sdk),
            "ro.build.fingerprint":
                f"gemma-edge/{self.product}/{self.device}:{self.android_release}/STANDIN/1:user/test-keys",
            "ro.hardware.egl": "adreno",
            "ro.serialno": "STANDIN0001",
        }

    def banner(self) -> bytes:
        return (f"device::ro.product.name={self.product};ro.product.model={self.model};"
                f"ro.product.device={self.device};features={','.join(self.features)}").encode()


def _meminfo(profile: DeviceProfile) -> str:
    total, avail = profile.mem_total_kb, profile.mem_available_kb
    rows = [("MemTotal", total), ("MemFree", avail // 4), ("MemAvailable", avail), ("Buffers", 8_212),
            ("Cached", avail // 2), ("SwapCached", 0), ("Active", total // 5), ("Inactive", total // 6),
            ("SwapTotal", 8_388_604), ("SwapFree", 6_291_452)]
    return "".join(f"{name + ':':<16}{value:>8} kB\n" for name, value in rows)


def populate_sandbox(sandbox: Path, profile: DeviceProfile, fixture_dir: Path, litert_lm: str) -> Path:
    """Create the phone's folders and the fixture state in `sandbox`; return the state folder."""
    sandbox.mkdir(parents=True, exist_ok=True)
    for folder in ("data/local/tmp", "sdcard", "system/bin", "vendor", "proc"):
        (sandbox / folder).mkdir(parents=True, exist_ok=True)
    (sandbox / "proc/meminfo").write_text(_meminfo(profile))
    (sandbox / "proc/cpuinfo").write_text("".join(
        f"processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
        f"fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\n\n"
        for i in range(len(profile.cpu_max_freq_khz))))
    cpu_root = sandbox / "sys/devices/system/cpu"
    for i, freq in enumerate(profile.cpu_max_freq_khz):
        (cpu_root / f"cpu{i}/cpufreq").mkdir(parents=True, exist_ok=True)
        (cpu_root / f"cpu{i}/cpufreq/cpuinfo_max_freq").write_text(f"{freq}\n")
        (cpu_root / f"cpu{i}/online").write_text("1\n")
    (cpu_root / "possible").write_text(f"0-{len(profile.cpu_max_freq_khz) - 1}\n")

    state = sandbox / STATE_NAME
    (state / "bin").mkdir(parents=True, exist_ok=True)
    profile_data: dict[str, Any] = {
        "props": profile.props(), "cpu_max_freq_khz": list(profile.cpu_max_freq_khz), "gpu": profile.gpu,
        "gpu_driver": profile.gpu_driver, "thermal": dataclasses.asdict(profile.thermal),
    }
    (state / "profile.json").write_text(json.dumps(profile_data, indent=1))
    (state / "thermal.json").unlink(missing_ok=True)
    script = fixture_dir / "android_cmds.py"
    for name in WRAPPED_COMMANDS:
        wrapper = state / "bin" / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" {name} "$@"\n')
        wrapper.chmod(0o755)
    bare = state / "bin" / "litert_lm_main"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fixture_dir / "litert_lm_standin.py"}" "$@"\n')
    bare.chmod(0o755)
    (state / "litert_lm").write_text(litert_lm)
    return state


def find_litert_lm() -> str:
    """The host's `litert-lm` CLI: next to this Python first (a venv), then on PATH."""
    beside = Path(sys.executable).with_name("litert-lm")
    if beside.exists():
        return str(beside)
    return shutil.which("litert-lm") or "litert-lm"


def shell_env(sandbox: Path, state: Path, fixture_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANDROID_")}
    env.update({
        "PATH": f"{state / 'bin'}:/usr/bin:/bin",
        "HOME": str(sandbox / "data/local/tmp"),
        "TMPDIR": str(sandbox / "data/local/tmp"),
        "FAKE_ADB_SANDBOX": str(sandbox),
        "FAKE_ADB_STATE": str(state),
        "FAKE_ADB_LITERT_LM": (state / "litert_lm").read_text(),
        "ANDROID_DATA": "/data",
        "ANDROID_ROOT": "/system",
    })
    return env
