"""Benchmark results POSTed by the page: kept in memory (bounded) and optionally written to a folder.

The device lab drives the page and reads results either from the page itself or from this store; writing each
result to its own JSON file (atomically) keeps them after the server stops.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


class BenchStore:
    def __init__(self, max_results: int = 200, directory: Path | None = None) -> None:
        self._results: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_results)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def add(self, result: dict[str, Any]) -> dict[str, Any]:
        """Store `result` under a new id; returns the stored record ({id, received_utc, result})."""
        received = datetime.datetime.now(datetime.UTC)
        with self._lock:
            record = {"id": next(self._ids), "received_utc": received.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "result": result}
            self._results.append(record)
        if self.directory is not None:
            name = f"bench-{received.strftime('%Y%m%dT%H%M%S%f')}-{record['id']}.json"
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".bench-", suffix=".partial")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=2)
            os.replace(tmp, self.directory / name)
            record = {**record, "file": name}
        return record

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._results)

    def get(self, result_id: int) -> dict[str, Any] | None:
        with self._lock:
            return next((r for r in self._results if r["id"] == result_id), None)
