"""Top-1 agreement results kept between runs, so a timing rerun does not redo minutes of fidelity work.

Agreement is deterministic for a given file and reference (checkpoint fingerprint, prompts, reference tokens per
prompt), so it is stored per reference in one JSON file, keyed by each file's resolved path, size and mtime: a
rebuilt bundle or rewritten GGUF gets a new key and is judged again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.fidelity import Agreement
from sdk_build.system.atomic import atomic_write_json

CACHE_VERSION = 1  # bump when bench.fidelity's positions or criterion change


def file_key(path: Path) -> str:
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


class FidelityCache:
    """One reference's results: {"reference": summary, "files": {file_key: {"matches", "positions"}}}."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"version": CACHE_VERSION, "reference": None, "files": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                loaded = {}
            if loaded.get("version") == CACHE_VERSION:
                self.data = loaded

    def get(self, file: Path) -> Agreement | None:
        entry = self.data["files"].get(file_key(file))
        return Agreement(int(entry["matches"]), int(entry["positions"])) if entry else None

    def put(self, file: Path, agreement: Agreement) -> None:
        self.data["files"][file_key(file)] = {"matches": agreement.matches, "positions": agreement.positions}
        atomic_write_json(self.path, self.data)

    @property
    def reference(self) -> dict[str, Any] | None:
        return self.data.get("reference")

    @reference.setter
    def reference(self, summary: dict[str, Any]) -> None:
        self.data["reference"] = summary
        atomic_write_json(self.path, self.data)
