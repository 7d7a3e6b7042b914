"""Map the stand-in phone's absolute paths onto its sandbox folder on this host.

The sandbox *is* the phone's filesystem: `/data/local/tmp/x` lives at `SANDBOX/data/local/tmp/x`. Shell
command lines are rewritten textually before `/bin/sh` runs them, and outputs are rewritten back, so the
bridge only ever sees device paths. `/dev/null` and the host's own tools stay untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

# Top-level folders that belong to the phone. /proc is mapped only for the files the sandbox fakes.
DEVICE_ROOTS = ("data", "sdcard", "storage", "sys", "system", "vendor", "odm", "product", "apex")
FAKED_PROC = ("meminfo", "cpuinfo")

_ROOT_RE = re.compile(r"(?<![\w./~-])/(" + "|".join(DEVICE_ROOTS) + r")(?=/|\s|$|[\"';|&)<>`])")
_PROC_RE = re.compile(r"(?<![\w./~-])/proc/(" + "|".join(FAKED_PROC) + r")(?=\s|$|[\"';|&)<>`])")


def map_command(command: str, sandbox: Path) -> str:
    """Rewrite device paths in a shell command line to sandbox paths."""
    root = str(sandbox)
    command = _ROOT_RE.sub(lambda m: f"{root}/{m.group(1)}", command)
    return _PROC_RE.sub(lambda m: f"{root}/proc/{m.group(1)}", command)


def unmap_output(data: bytes, sandbox: Path) -> bytes:
    """Turn sandbox paths in command output back into device paths."""
    return data.replace(str(sandbox).encode(), b"")


def device_to_host(device_path: str, sandbox: Path) -> Path:
    """Resolve a device path (as sync sends it) to a host path that cannot escape the sandbox."""
    sandbox = sandbox.resolve()
    parts = [p for p in device_path.split("/") if p not in ("", ".")]
    stack: list[str] = []
    for part in parts:
        if part == "..":
            if stack:
                stack.pop()
        else:
            stack.append(part)
    return sandbox.joinpath(*stack) if stack else sandbox
