"""Push a file to the device only when its sha256 differs, resuming an interrupted push where it stopped.

A 1 GB bundle over a flaky USB hub or a remote adb server gets interrupted; starting over each time is what
makes phone farms slow. adb's sync SEND always rewrites a whole file, so resuming is built on top of it:

* the file is assembled on the device as `NAME.partial`, next to `NAME.partial.sha256` holding the sha256
  of the file being assembled (a partial of some other version is thrown away, never mixed);
* it is sent in chunks of `chunk_bytes`: the first is SENT as the partial itself, each later one is SENT
  as `NAME.partial.chunk` and appended with `cat >>` on the device, then the partial's size is checked;
* after an interruption, the next push finds the partial, cuts it back to a whole number of chunks
  (an append that died half way leaves a torn tail) and continues from there;
* when every byte is there, the device's `sha256sum` must equal the local one before the partial is
  renamed to NAME (one automatic restart from scratch if it does not).

Skipping is decided the same way: a device file of the same size whose `sha256sum` equals the local sha256
is not pushed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import time
from collections.abc import Callable
from pathlib import Path

from adbutils import AdbDevice

from android_bridge import shell
from android_bridge.errors import PushError
from android_bridge.shell import quote
from android_bridge.sync import SyncSession

DEFAULT_REMOTE_DIR = "/data/local/tmp"
DEFAULT_CHUNK_BYTES = 64 * 2**20

Progress = Callable[[int, int], None]  # (bytes on the device, total bytes)


@dataclasses.dataclass
class PushReport:
    remote_path: str
    sha256: str
    bytes_total: int
    skipped: bool  # the device already had this exact file
    resumed_from: int  # bytes found from an earlier interrupted push and not sent again
    bytes_sent: int
    seconds: float


def sha256_file(path: Path, chunk_size: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def remote_sha256(device: AdbDevice, remote: str, *, timeout_s: float) -> str | None:
    """sha256 of a device file (toybox `sha256sum`), or None when the file is missing."""
    result = shell.run(device, f"sha256sum {quote(remote)} 2>/dev/null", timeout_s=timeout_s)
    words = result.stdout.split()
    if result.exit_code != 0 or not words:
        return None
    return words[0].lower()


def push_file(device: AdbDevice, local: Path, remote_dir: str = DEFAULT_REMOTE_DIR, *, remote_name: str | None = None,
              sha256: str | None = None, mode: int = 0o644, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
              idle_timeout_s: float = 60.0, hash_timeout_s: float = 300.0,
              progress: Progress | None = None) -> PushReport:
    """Make `remote_dir/remote_name` a copy of `local`, sending only what the device lacks."""
    local = Path(local)
    if not local.is_file():
        raise PushError(f"{local} is not a file")
    if chunk_bytes <= 0:
        raise PushError(f"chunk_bytes must be positive, got {chunk_bytes}")
    start = time.monotonic()
    total = local.stat().st_size
    digest = (sha256 or sha256_file(local)).lower()
    remote = posixpath.join(remote_dir, remote_name or local.name)
    shell.run(device, f"mkdir -p {quote(remote_dir)}", timeout_s=idle_timeout_s, check=True)

    with SyncSession(device, idle_timeout_s) as sync:
        existing = sync.stat(remote)
    if existing.exists and existing.size == total and remote_sha256(device, remote, timeout_s=hash_timeout_s) == digest:
        if progress:
            progress(total, total)
        return PushReport(remote, digest, total, True, 0, 0, time.monotonic() - start)

    for _attempt in range(2):
        resumed_from, sent = _push_chunks(device, local, remote, digest, total, mode, chunk_bytes, idle_timeout_s,
                                          progress)
        partial = remote + ".partial"
        if remote_sha256(device, partial, timeout_s=hash_timeout_s) == digest:
            shell.run(device, f"chmod {mode:o} {quote(partial)} && mv -f {quote(partial)} {quote(remote)} && "
                              f"rm -f {quote(partial + '.sha256')}", timeout_s=idle_timeout_s, check=True)
            return PushReport(remote, digest, total, False, resumed_from, sent, time.monotonic() - start)
        shell.run(device, f"rm -f {quote(partial)} {quote(partial + '.sha256')}", timeout_s=idle_timeout_s)
    raise PushError(f"{remote} on {device.serial} does not match {local} (sha256) after two full pushes; "
                    "the device storage may be failing or full")


def _push_chunks(device: AdbDevice, local: Path, remote: str, digest: str, total: int, mode: int,
                 chunk_bytes: int, idle_timeout_s: float, progress: Progress | None) -> tuple[int, int]:
    """Send what `remote.partial` lacks; return (bytes found already there, bytes sent now)."""
    partial, meta, piece = remote + ".partial", remote + ".partial.sha256", remote + ".partial.chunk"
    recorded = shell.run(device, f"cat {quote(meta)} 2>/dev/null", timeout_s=idle_timeout_s).stdout.strip()
    with SyncSession(device, idle_timeout_s) as sync:
        have = sync.stat(partial)
    offset = 0
    if recorded == digest and have.exists and have.size <= total:
        offset = have.size - have.size % chunk_bytes if have.size < total else total
        if offset != have.size:
            shell.run(device, f"truncate -s {offset} {quote(partial)}", timeout_s=idle_timeout_s, check=True)
    else:
        shell.run(device, f"rm -f {quote(partial)} {quote(piece)} && echo {digest} > {quote(meta)}",
                  timeout_s=idle_timeout_s, check=True)
    resumed_from, sent = offset, 0
    done = offset
    if progress:
        progress(done, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if total == 0 and offset == 0:
        with SyncSession(device, idle_timeout_s) as sync:
            sync.send_range(local, 0, 0, partial, mode)
    while offset < total:
        length = min(chunk_bytes, total - offset)
        with SyncSession(device, idle_timeout_s) as sync:
            if offset == 0:
                sent += sync.send_range(local, 0, length, partial, mode, advance)
            else:
                sent += sync.send_range(local, offset, length, piece, 0o644, advance)
        if offset > 0:
            # Time for `cat` to copy one chunk on slow flash: at least 10 MB/s, never less than the idle time-out.
            shell.run(device, f"cat {quote(piece)} >> {quote(partial)} && rm -f {quote(piece)}",
                      timeout_s=max(idle_timeout_s, length / 10e6), check=True)
        offset += length
        with SyncSession(device, idle_timeout_s) as sync:
            now = sync.stat(partial)
        if now.size != offset:
            raise PushError(f"{partial} on {device.serial} is {now.size} bytes after appending up to {offset}; "
                            "is the device storage full?")
    return resumed_from, sent
