"""JSON API: `GET /api/bundles` (the manifest plus download URLs) and `/api/bench-results` (benchmark JSON).

`/api/bundles` is what the page and mobile apps read to pick a bundle; the filters are exact matches on the
manifest fields of the same name. Benchmark results arrive from the page in benchmark mode (see automation.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from sdk_build.manifest import SCHEMA_VERSION, BundleEntry
from web_demo.bench_store import BenchStore
from web_demo.blueprints.files import SHA256_HEADER
from web_demo.bundle_index import BundleIndex

bp = Blueprint("api", __name__, url_prefix="/api")

FILTERS = ("target", "quantization", "format", "model")


def _entry_json(entry: BundleEntry) -> dict[str, Any]:
    return {
        **entry.to_dict(),
        "url": url_for("files.bundle_file", name=entry.file, _external=True),
        "path": url_for("files.bundle_file", name=entry.file),
    }


def _error(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


@bp.get("/bundles")
def bundles() -> Response:
    index: BundleIndex = current_app.extensions["bundle_index"]
    filters = {name: request.args.get(name) or None for name in FILTERS}
    entries = index.entries(**filters)
    response = jsonify(
        schema_version=SCHEMA_VERSION,
        filters={k: v for k, v in filters.items() if v},
        sha256_header=SHA256_HEADER,
        bundles=[_entry_json(e) for e in entries],
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.post("/bench-results")
def post_bench_result() -> Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _error(400, "expected a JSON object (the page's benchmark result)")
    store: BenchStore = current_app.extensions["bench_store"]
    record = store.add(data)
    response = jsonify(id=record["id"], received_utc=record["received_utc"], file=record.get("file"))
    response.status_code = 201
    return response


@bp.get("/bench-results")
def list_bench_results() -> Response:
    store: BenchStore = current_app.extensions["bench_store"]
    return jsonify(results=store.all())


@bp.get("/bench-results/<int:result_id>")
def get_bench_result(result_id: int) -> Response:
    store: BenchStore = current_app.extensions["bench_store"]
    record = store.get(result_id)
    if record is None:
        return _error(404, f"no benchmark result {result_id}")
    return jsonify(record)


@bp.get("/health")
def health() -> Response:
    index: BundleIndex = current_app.extensions["bundle_index"]
    vendor = current_app.config["VENDOR_DIR"]
    return jsonify(ok=True, bundles=len(index.manifest().bundles), runtime_installed=(vendor / "genai_bundle.mjs").is_file())
