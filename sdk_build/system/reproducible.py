"""Same inputs, same bytes: what the bundlers would otherwise write differently on every run.

Why: a CDN, a cache and a user's audit identify a bundle by its sha256; a rebuild from the same checkpoint, spec
and tool versions must give the same file. The float export, the quantized model and the bundles' contents are
already deterministic; what differed was metadata about the run:

- `.task` (MediaPipe's bundler, a zip): every member's modification time, in its local header and in the
  central directory. `normalize_zip_times` rewrites those four-byte DOS date/time fields in place, so the
  layout (member order, the alignment padding the runtime relies on to map members) stays exactly the bundler's.
- `.litertlm` (litert-lm's builder): the system metadata `uuid` (random) and `creation_timestamp` (now).
  `deterministic_litertlm_metadata(identity)` makes the uuid a name-based UUID of the build's identity (its spec
  fingerprint: checkpoint, variant, export options, recipe and tool versions) and the timestamp the build epoch.

The build epoch is `SOURCE_DATE_EPOCH` when set (the reproducible-builds.org convention), else 0; zip times
cannot go before 1980-01-01, so they are clamped to it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os
import struct
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

UUID_NAMESPACE = uuid.UUID("6f0c0d2e-6a35-4c1f-9d4b-2f0a5e6b7c8d")
_LOCAL_HEADER = b"PK\x03\x04"
_CENTRAL_HEADER = b"PK\x01\x02"

_identity: contextvars.ContextVar[str | None] = contextvars.ContextVar("gemma_edge_litertlm_identity", default=None)
_install_lock = threading.Lock()
_installed = False


def build_epoch() -> datetime.datetime:
    """The time every bundle says it was made: SOURCE_DATE_EPOCH, else the Unix epoch (UTC)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    seconds = int(raw) if raw.isdigit() else 0
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _dos_time_date(moment: datetime.datetime) -> tuple[int, int]:
    moment = max(moment, datetime.datetime(1980, 1, 1, tzinfo=datetime.UTC))
    time_field = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date_field = ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day
    return time_field, date_field


def normalize_zip_times(path: Path, moment: datetime.datetime | None = None) -> None:
    """Set every member's modification time in zip `path` (local headers and central directory) to `moment`."""
    fields = struct.pack("<HH", *_dos_time_date(moment or build_epoch()))
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        # Central directory records follow each other from the directory's start (offsets include any prefix).
        central_start = archive.start_dir  # type: ignore[attr-defined]
    with open(path, "r+b") as handle:
        for info in infos:
            handle.seek(info.header_offset)
            if handle.read(4) != _LOCAL_HEADER:
                raise ValueError(f"{path}: no local header at {info.header_offset} for {info.filename}")
            handle.seek(info.header_offset + 10)
            handle.write(fields)
        position = central_start
        for _ in infos:
            handle.seek(position)
            record = handle.read(46)
            if record[:4] != _CENTRAL_HEADER:
                raise ValueError(f"{path}: no central directory record at {position}")
            name_length, extra_length, comment_length = struct.unpack("<HHH", record[28:34])
            handle.seek(position + 12)
            handle.write(fields)
            position += 46 + name_length + extra_length + comment_length


def _install_litertlm_hook() -> None:
    """Wrap litert-lm's `populate_system_metadata` once: deterministic inside `deterministic_litertlm_metadata`."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from litert_lm_builder import litertlm_builder

        original = litertlm_builder.populate_system_metadata

        def populate_system_metadata(system_metadata: list[Any]) -> list[Any]:
            populated = original(system_metadata)
            identity = _identity.get()
            if identity is None:
                return populated
            fixed = {"uuid": str(uuid.uuid5(UUID_NAMESPACE, identity)), "creation_timestamp": build_epoch().isoformat()}
            for item in populated:
                if item.key in fixed:
                    item.value = fixed[item.key]
            return populated

        litertlm_builder.populate_system_metadata = populate_system_metadata
        _installed = True


@contextlib.contextmanager
def deterministic_litertlm_metadata(identity: str) -> Iterator[None]:
    """Within the block (this thread only), `.litertlm` files get the uuid of `identity` and the build epoch."""
    _install_litertlm_hook()
    token = _identity.set(identity)
    try:
        yield
    finally:
        _identity.reset(token)
