"""The resolved checkpoint every later stage works from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from sdk_build.architecture import ModelShape
from sdk_build.sources.provenance import SAFETENSORS_F32, SourceInfo


def default_cache_dir() -> Path:
    """Where resolved checkpoints and float exports are cached (`GEMMA_EDGE_CACHE` overrides)."""
    return Path(os.environ.get("GEMMA_EDGE_CACHE", Path.home() / ".cache" / "gemma-edge"))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    ref: str
    directory: Path
    model: str  # "gemma3-270m" | "gemma3-1b" | "gemma3-custom"
    shape: ModelShape
    instruction_tuned: bool
    qat: bool
    fingerprint: str
    random_seed: int | None = None
    """Set for random:... checkpoints: weights are generated from this seed instead of read from files."""
    source: SourceInfo = SAFETENSORS_F32
    """The format and quantization the checkpoint had before it was read (GGUF, MLX, safetensors)."""

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / "tokenizer.model"

    @property
    def display_name(self) -> str:
        """The model part of Google's litert-community file names: Gemma3-1B-IT, Gemma3-270M."""
        base = {"gemma3-270m": "Gemma3-270M", "gemma3-1b": "Gemma3-1B"}.get(self.model, "Gemma3-Custom")
        return base + ("-IT" if self.instruction_tuned else "")


def fingerprint_files(paths: list[Path], extra: dict | None = None) -> str:
    """sha256 over file contents (cached per file by size and mtime) plus `extra` identity data."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(_file_digest(path).encode())
    digest.update(json.dumps(extra or {}, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _file_digest(path: Path) -> str:
    stat = path.stat()
    sidecar = path.parent / f".{path.name}.sha256"
    key = f"{stat.st_size}:{stat.st_mtime_ns}"
    if sidecar.exists():
        cached_key, _, cached = sidecar.read_text().partition(" ")
        if cached_key == key:
            return cached.strip()
    from sdk_build.artifacts.manifest import sha256_file

    value = sha256_file(path)
    try:
        sidecar.write_text(f"{key} {value}")
    except OSError:
        pass  # read-only checkpoint folder: just do not cache
    return value
