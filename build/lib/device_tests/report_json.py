"""The machine-readable report: one JSON record per measured (bundle, precision) run, plus run metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from device_tests.evaluate import Evaluation


def report_document(evaluations: Sequence[Evaluation], meta: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "gemma-edge.device-lab/1", "meta": meta, "records": [ev.to_dict() for ev in evaluations]}


def write_json_report(path: Path, evaluations: Sequence[Evaluation], meta: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(report_document(evaluations, meta), indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return path
