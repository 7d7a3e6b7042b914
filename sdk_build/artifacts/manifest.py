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

**Publishing.** A new bundle takes its final name and its manifest entry in one step (`publish_bundle`): under the
exclusive lock the staged file is renamed into place and the manifest rewritten. Readers that must see a file and
its entry together (the web demo) take the same lock shared (`reading`), so none sees new bytes beside the old
entry or the reverse. Each entry records the file's `mtime_ns` at publication: a reader whose open file still has
that stamp (and size) is reading the bytes the sha256 describes; any other stamp means the file was changed by
something else and must be hashed before its sha256 is claimed.

**Reading.** `load_manifest` checks the whole document against the entries' field types (`sdk_build.artifacts.json_shape`)
and every `file` against the plain-file-name rule (`sdk_build.artifacts.file_names`), so a manifest of the wrong shape, not
UTF-8, or naming a path outside the folder is one `ManifestError` naming the file and the field, never a
`TypeError` far away.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdk_build.artifacts.file_names import plain_name_problem
from sdk_build.artifacts.json_shape import ShapeError, check_fields, decode_json
from sdk_build.errors import ManifestError, os_error_message
from sdk_build.system.atomic import atomic_write_json

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"
SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 64 * 2**20
"""Far above any real manifest (a 1B matrix's is about 30 KB): a bigger file is not one, and is not read whole."""


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
    mtime_ns: int | None = None
    """The file's modification time when it was published with this entry (None: recorded before that existed)."""
    reproducible: bool = False
    """True when the build writes the same bytes for the same inputs (no timestamps, no random ids inside)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest entry") -> BundleEntry:
        try:
            return cls(**_checked_entry(cls, data, where))
        except ShapeError as exc:
            raise ManifestError(f"{exc}; fix the entry or rebuild the bundle") from None


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
    mtime_ns: int | None = None
    """As for BundleEntry: the file's modification time when this entry was recorded."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest adapter entry") -> AdapterEntry:
        try:
            return cls(**_checked_entry(cls, data, where))
        except ShapeError as exc:
            raise ManifestError(f"{exc}; fix the entry or rebuild the adapter") from None


def _checked_entry(cls: type, data: Any, where: str) -> dict[str, Any]:
    """The fields of one entry, type-checked, with a plain file name, a sane size and a sha256 of 64 hex digits."""
    if isinstance(data, dict) and isinstance(data.get("file"), str):
        where = f"{where} {data['file']!r}"
    fields = check_fields(cls, data, where)
    problem = plain_name_problem(fields["file"])
    if problem:
        raise ShapeError(f"{where}: file {problem}; a manifest may only name files directly inside its folder")
    if fields["bytes"] < 0:
        raise ShapeError(f"{where}: bytes must not be negative")
    sha = fields["sha256"]
    if len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha):
        raise ShapeError(f"{where}: sha256 must be 64 hex digits")
    return fields


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
    """Read `directory/manifest.json`; a missing file is an empty manifest, anything unreadable a ManifestError."""
    path = manifest_path(directory)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return Manifest(bundles=[])
    except OSError as exc:
        raise ManifestError(os_error_message(exc, "cannot read the manifest")) from None
    return parse_manifest(raw, path)


def parse_manifest(raw: bytes, path: Path) -> Manifest:
    """The manifest in `raw` (the bytes of `path`), checked whole: see the module docstring."""
    fix = "fix it, or delete it and rebuild the bundles"
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB: not a manifest; {fix}")
    data = decode_json(raw, str(path), "manifest", fix, ManifestError)
    if not isinstance(data, dict):
        raise ManifestError(f"{path} holds a JSON {type(data).__name__}, not a manifest object; {fix}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}; {fix}"
        )
    bundles, adapters = data.get("bundles", []), data.get("adapters", [])
    for key, value in (("bundles", bundles), ("adapters", adapters)):
        if not isinstance(value, list):
            raise ManifestError(f"{path}: {key!r} must be a list, not {type(value).__name__}; {fix}")
    manifest = Manifest(
        bundles=[BundleEntry.from_dict(b, f"{path}: bundles[{i}]") for i, b in enumerate(bundles)],
        adapters=[AdapterEntry.from_dict(a, f"{path}: adapters[{i}]") for i, a in enumerate(adapters)],
    )
    names = [e.file for e in manifest.bundles] + [a.file for a in manifest.adapters]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ManifestError(f"{path} lists {twice} more than once; {fix}")
    return manifest


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def reading(directory: Path, timeout_s: float = 5.0) -> Iterator[None]:
    """Hold the folder's manifest lock shared: no publication (`publish_bundle`) happens inside the block.

    A folder without a lock file has never been written by sdk-build here (a copy), so there is nothing to wait
    for. A writer holds the lock for milliseconds; after `timeout_s` a ManifestError says the folder is busy.
    """
    try:
        fd = os.open(Path(directory) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    except OSError as exc:
        raise ManifestError(os_error_message(exc, "cannot open the manifest lock")) from None
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ManifestError(f"{directory} is being updated by a build; try again in a moment") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclasses.dataclass(frozen=True)
class EntryFields:
    """What the layers above the pipeline know about a bundle and its manifest entry records: the targets that use
    the file (a plan), and the adapter fused into it with the base it came from (LoRA). An input of
    `sdk_build.pipeline.build`, which writes the entry once with them, so no caller rewrites an entry afterwards."""

    targets: tuple[str, ...] | None = None
    checkpoint: dict[str, str] | None = None
    lora: dict[str, Any] | None = None

    def apply(self, entry: BundleEntry) -> bool:
        """Set these fields on `entry`; whether anything changed."""
        before = entry.to_dict()
        if self.targets is not None:
            entry.extra["targets"] = list(self.targets)
        if self.checkpoint is not None:
            entry.checkpoint = dict(self.checkpoint)
        if self.lora is not None:
            entry.lora = dict(self.lora)
        return entry.to_dict() != before


def record_fields(directory: Path, entries: list[BundleEntry], fields: EntryFields) -> None:
    """Give already published entries `fields` (a bundle found up to date by a build that names other targets):
    the files untouched, each entry rewritten only when that changes it."""
    for entry in entries:
        if fields.apply(entry):
            update_manifest(directory, entry)


def update_manifest(directory: Path, entry: BundleEntry) -> Manifest:
    """Insert or replace `entry` (by file name) and rewrite the manifest atomically under a lock."""
    directory = Path(directory)
    with _locked(directory):
        return _replace_entry(directory, entry)


def _replace_entry(directory: Path, entry: BundleEntry) -> Manifest:
    manifest = load_manifest(directory)
    manifest.bundles = [b for b in manifest.bundles if b.file != entry.file] + [entry]
    manifest.bundles.sort(key=lambda b: b.file)
    atomic_write_json(manifest_path(directory), manifest.to_dict())
    return manifest


def publish_bundle(directory: Path, staged: Path, entry: BundleEntry) -> Manifest:
    """Give the whole, hashed file `staged` its final name `directory/entry.file` and record `entry`, as one step.

    `staged` must be on the same file system (a build's work folder inside `directory`), so the rename is atomic.
    Under the exclusive manifest lock: rename, record the file's mtime in the entry, rewrite the manifest. A reader
    holding the lock shared (`reading`) sees either the old file and entry or the new ones.
    """
    directory = Path(directory)
    problem = plain_name_problem(entry.file)
    if problem:
        raise ManifestError(f"cannot publish {entry.file!r}: the name {problem}")
    final = directory / entry.file
    with _locked(directory):
        os.replace(staged, final)
        entry.mtime_ns = os.stat(final).st_mtime_ns
        manifest = _replace_entry(directory, entry)
    _fsync_directory(directory)
    return manifest


def _fsync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable (a power cut must not bring back the old names)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
