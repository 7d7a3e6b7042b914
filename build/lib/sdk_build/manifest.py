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
                  "build_seconds": 151.2, "peak_rss_bytes": 6.8e9, "created_utc": "2026-11-23T10:00:00Z",
                  "lora": null}],
     "adapters": [...]}

`lora` (optional) says how a LoRA adapter went into the bundle: {"mode": "fused", "fingerprint": ..., "rank", "alpha",
"scale", "target_modules", "source", ...} for weights merged at build time, or {"mode": "runtime", "rank": 16} for a
bundle whose signatures take LoRA weights as inputs. `adapters` (optional) lists the runtime adapter files served
beside the bundles, each with the bundles it fits (`AdapterEntry`). Manifests written before either existed load
unchanged.

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
    lora: dict[str, Any] | None = None
    """How a LoRA adapter went into this bundle (see the module docstring); None for a plain bundle."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING}
        missing = names - set(data) - optional
        if missing:
            raise BuildError(f"manifest entry for {data.get('file', '?')} lacks {sorted(missing)}; rebuild it")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass
class AdapterEntry:
    """A runtime LoRA adapter file served beside the bundles it fits (those built with the same base and rank)."""

    file: str
    bytes: int
    sha256: str
    rank: int
    """The rank the file is padded to: the `lora_rank` it declares and the runtime bundles' LoRA input rank."""
    lora: dict[str, Any]
    """The adapter it came from: fingerprint, source folder, trained rank, alpha, scale, target modules."""
    base: dict[str, str]
    """{"ref", "fingerprint"} of the checkpoint the adapter was checked against."""
    bundles: list[str]
    created_utc: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data)
        if missing:
            raise BuildError(f"manifest adapter entry {data.get('file', '?')} lacks {sorted(missing)}; rebuild it")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass
class Manifest:
    bundles: list[BundleEntry]
    schema_version: int = SCHEMA_VERSION
    adapters: list[AdapterEntry] = dataclasses.field(default_factory=list)

    def find(self, file: str) -> BundleEntry | None:
        return next((b for b in self.bundles if b.file == file), None)

    def adapters_for(self, bundle_file: str) -> list[AdapterEntry]:
        """The runtime adapter files that fit `bundle_file`."""
        return [a for a in self.adapters if bundle_file in a.bundles]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": self.schema_version, "bundles": [b.to_dict() for b in self.bundles]}
        if self.adapters:
            data["adapters"] = [a.to_dict() for a in self.adapters]
        return data


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
    return Manifest(
        bundles=[BundleEntry.from_dict(b) for b in data.get("bundles", [])],
        adapters=[AdapterEntry.from_dict(a) for a in data.get("adapters", [])],
    )


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


def update_manifest_adapter(directory: Path, entry: AdapterEntry) -> Manifest:
    """Insert or replace the adapter `entry` (by file name) and rewrite the manifest atomically under a lock."""
    directory = Path(directory)
    with _locked(directory):
        manifest = load_manifest(directory)
        manifest.adapters = sorted([a for a in manifest.adapters if a.file != entry.file] + [entry],
                                   key=lambda a: a.file)
        atomic_write_json(manifest_path(directory), manifest.to_dict())
    return manifest


def sha256_file(path: Path, chunk_size: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
