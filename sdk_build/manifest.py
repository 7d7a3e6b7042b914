"""`manifest.json`: the index of a bundle folder, read by the web demo, the pull client and the device lab.

Format (schema_version 1)::

    {"schema_version": 1,
     "bundles": [{"file": "Gemma3-270M_multi-prefill-seq_q8_ekv1024.task", "bytes": 296..., "sha256": "...",
                  "model": "gemma3-270m", "quantization": "dynamic_int8", "ekv": 1024,
                  "prefill_lengths": [32, 128, 512], "target": "android-cpu", "format": "task",
                  "instruction_tuned": false, "start_token": "<bos>", "stop_tokens": ["<eos>", "<end_of_turn>"],
                  "prompt_template": {"user_prefix": ..., "user_suffix": ..., "model_prefix": ..., "model_suffix": ...},
                  "checkpoint": {"ref": "embedded:gemma3-270m", "fingerprint": "..."},
                  "spec_fingerprint": "...", "tool_versions": {"litert-torch": "0.10.0", ...},
                  "build_seconds": 151.2, "peak_rss_bytes": 6.8e9, "created_utc": "2026-11-23T10:00:00Z"}]}

Entries are keyed by `file`; updates go through `update_manifest`, which holds a lock file and writes the
whole manifest atomically, so parallel builds never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdk_build.atomic import atomic_write_json
from sdk_build.errors import BuildError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


@dataclasses.dataclass
class BundleEntry:
    file: str
    bytes: int
    sha256: str
    model: str
    quantization: str
    ekv: int
    prefill_lengths: list[int]
    target: str
    format: str
    instruction_tuned: bool
    start_token: str
    stop_tokens: list[str]
    prompt_template: dict[str, str]
    checkpoint: dict[str, str]
    spec_fingerprint: str
    tool_versions: dict[str, str]
    build_seconds: float
    peak_rss_bytes: int
    created_utc: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data) - {"extra"}
        if missing:
            raise BuildError(f"manifest entry for {data.get('file', '?')} lacks {sorted(missing)}; rebuild it")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass
class Manifest:
    bundles: list[BundleEntry]
    schema_version: int = SCHEMA_VERSION

    def find(self, file: str) -> BundleEntry | None:
        return next((b for b in self.bundles if b.file == file), None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "bundles": [b.to_dict() for b in self.bundles]}


def manifest_path(directory: Path) -> Path:
    return Path(directory) / MANIFEST_NAME


def load_manifest(directory: Path) -> Manifest:
    """Read `directory/manifest.json`; a missing file is an empty manifest, a corrupt one is an error."""
    path = manifest_path(directory)
    if not path.exists():
        return Manifest(bundles=[])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path} is not valid JSON ({exc}); delete it and rebuild the bundles") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BuildError(f"{path} has schema_version {data.get('schema_version')}, expected {SCHEMA_VERSION}")
    return Manifest(bundles=[BundleEntry.from_dict(b) for b in data.get("bundles", [])])


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_manifest(directory: Path, entry: BundleEntry) -> Manifest:
    """Insert or replace `entry` (by file name) and rewrite the manifest atomically under a lock."""
    directory = Path(directory)
    with _locked(directory):
        manifest = load_manifest(directory)
        manifest.bundles = [b for b in manifest.bundles if b.file != entry.file] + [entry]
        manifest.bundles.sort(key=lambda b: b.file)
        atomic_write_json(manifest_path(directory), manifest.to_dict())
    return manifest


def sha256_file(path: Path, chunk_size: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
