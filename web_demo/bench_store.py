"""Benchmark results POSTed by the page: kept in memory (bounded) and optionally written to a folder.

The device lab drives the page and reads results either from the page itself or from this store; writing each
result to its own JSON file (atomically) keeps them after the server stops.

**Bounds.** The endpoint is unauthenticated, so what a request can make the server hold is bounded in bytes, not
only in count: a result is kept as its compact JSON text (a parsed object of numbers can take ten times its text in
memory), one result may be at most `max_result_bytes`, all kept results together at most `max_total_bytes` (the
oldest are dropped first), and the folder receives at most `max_directory_bytes` from one server run (then
`StoreFull`, which the API answers with 507).
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

from sdk_build.errors import os_error_message


class ResultTooLarge(ValueError):
    """One result is larger than the store accepts."""


class StoreFull(Exception):
    """The results folder cannot take more (its byte budget for this run is spent, or the disk is full)."""


class BenchStore:
    def __init__(
        self,
        max_results: int = 200,
        directory: Path | None = None,
        *,
        max_result_bytes: int = 256 * 2**10,
        max_total_bytes: int = 16 * 2**20,
        max_directory_bytes: int = 256 * 2**20,
    ) -> None:
        self._records: collections.deque[tuple[int, str]] = collections.deque()
        self._total = 0
        self._max_results = max_results
        self.max_result_bytes = max_result_bytes
        self._max_total = max_total_bytes
        self._max_directory = max_directory_bytes
        self._written = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def add(self, result: dict[str, Any]) -> dict[str, Any]:
        """Store `result` under a new id; returns the stored record ({id, received_utc, result[, file]})."""
        received = datetime.datetime.now(datetime.UTC)
        body = json.dumps(result, separators=(",", ":"))  # ASCII: one byte a character, as the bounds count
        if len(body) > self.max_result_bytes:
            raise ResultTooLarge(f"a benchmark result may be at most {self.max_result_bytes} bytes of JSON")
        with self._lock:
            result_id, stamp = next(self._ids), received.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            text = f'{{"id":{result_id},"received_utc":"{stamp}","result":{body}}}'
            self._records.append((result_id, text))
            self._total += len(text)
            while self._records and (len(self._records) > self._max_results or self._total > self._max_total):
                self._total -= len(self._records.popleft()[1])
        record: dict[str, Any] = {"id": result_id, "received_utc": stamp, "result": result}
        if self.directory is not None:
            record = {**record, "file": self._write(record, received)}
        return record

    def _write(self, record: dict[str, Any], received: datetime.datetime) -> str:
        text = json.dumps(record, indent=2, ensure_ascii=False)
        size = len(text.encode("utf-8"))
        with self._lock:
            if self._written + size > self._max_directory:
                raise StoreFull(
                    f"{self.directory} already received {self._written} bytes of results from this server run "
                    f"(limit {self._max_directory}); move them away and restart the server"
                )
            self._written += size
        assert self.directory is not None
        name = f"bench-{received.strftime('%Y%m%dT%H%M%S%f')}-{record['id']}.json"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".bench-", suffix=".partial")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, self.directory / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreFull(os_error_message(exc, f"cannot write the benchmark result into {self.directory}")) from None
        return name

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            texts = [text for _, text in self._records]
        return [json.loads(text) for text in texts]

    def get(self, result_id: int) -> dict[str, Any] | None:
        with self._lock:
            text = next((t for i, t in self._records if i == result_id), None)
        return None if text is None else json.loads(text)
