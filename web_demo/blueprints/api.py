"""JSON API: `GET /api/bundles` (the manifest plus download URLs), `/api/catalog` (what apps read: see
sdk_build.artifacts.catalog) and `/api/bench-results` (benchmark JSON).

`/api/bundles` is what the page and mobile apps read to pick a bundle; the filters are exact matches on the
manifest fields of the same name. Benchmark results arrive from the page in benchmark mode (see automation.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from sdk_build.artifacts.manifest import SCHEMA_VERSION, BundleEntry
from web_demo import vendor as vendored
from web_demo.bench_store import BenchStore, ResultTooLarge, StoreFull
from web_demo.blueprints.files import SHA256_HEADER
from web_demo.bundle_index import BundleIndex, BundleUnavailable

bp = Blueprint("api", __name__, url_prefix="/api")

FILTERS = ("target", "quantization", "format", "model")


def _entry_json(entry: BundleEntry) -> dict[str, Any]:
    return {
        **entry.to_dict(),
        "url": url_for("files.bundle_file", name=entry.file, _external=True),
        "path": url_for("files.bundle_file", name=entry.file),
    }


def _adapters_json(index: BundleIndex, entry: BundleEntry) -> list[dict[str, Any]]:
    """The runtime LoRA adapter files listed for `entry`, with download URLs like the bundles'."""
    return [
        {**a.to_dict(), "url": url_for("files.bundle_file", name=a.file, _external=True),
         "path": url_for("files.bundle_file", name=a.file)}
        for a in index.manifest().adapters_for(entry.file)
    ]


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
        bundles=[{**_entry_json(e), "adapters": _adapters_json(index, e)} for e in entries],
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/catalog")
def catalog() -> Response:
    """The app-facing catalog (sdk_build.artifacts.catalog) of the bundles this server can serve right now.

    URLs are server-relative paths (`/bundles/<file>`), resolved against this document's URL by clients, so they
    stay right behind any host name, port or reverse proxy. Listed files that are missing or whose bytes on disk
    are not the manifest's are left out and named under `omitted`.
    """
    from sdk_build.artifacts.catalog import build_catalog
    from sdk_build.errors import CatalogError

    index: BundleIndex = current_app.extensions["bundle_index"]
    servable, omitted = [], []
    for entry in index.manifest().bundles:
        try:
            index.check(entry.file)
        except BundleUnavailable as exc:
            omitted.append({"file": entry.file, "reason": str(exc)})
            continue
        servable.append(entry)
    try:
        data = build_catalog(servable, url_for=lambda e: url_for("files.bundle_file", name=e.file))
    except CatalogError as exc:
        return _error(409, str(exc))
    if omitted:
        data["omitted"] = omitted
    response = jsonify(data)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/catalog/schema")
def catalog_schema() -> Response:
    """The catalog's JSON Schema (version 1), the file shipped in sdk_build/artifacts/schemas/."""
    from sdk_build.artifacts.catalog import SCHEMA_FILE

    response = current_app.response_class(SCHEMA_FILE.read_bytes(), mimetype="application/schema+json")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.post("/bench-results")
def post_bench_result() -> Response:
    store: BenchStore = current_app.extensions["bench_store"]
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return _error(400, "expected a JSON object (the page's benchmark result)")
    try:
        record = store.add(data)
    except ResultTooLarge as exc:
        return _error(413, str(exc))
    except StoreFull as exc:
        return _error(507, str(exc))
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
    """Whether the server can serve bundles (HTTP 200, `ok`) or not (503), and every problem in words.

    `ok` is about the bundles (a manifest that cannot be read serves nothing); a missing browser runtime only stops
    the demo page, so it is listed under `problems` and `runtime_installed` without making the server unhealthy.
    """
    from sdk_build.errors import ManifestError
    from web_demo.runtime_files import missing_package, missing_runtime

    index: BundleIndex = current_app.extensions["bundle_index"]
    problems: list[str] = []
    try:
        count = len(index.manifest().bundles)
        ok = True
    except ManifestError as exc:
        problems.append(str(exc))
        count, ok = 0, False
    runtime_problem = missing_runtime(current_app.config["VENDOR_DIR"])
    if runtime_problem:
        problems.append(runtime_problem)
    # Each runtime the page may use (MediaPipe for .task, LiteRT-LM for .litertlm): installed or not.
    installed = {p.name: missing_package(p, current_app.config[p.config_key]) is None for p in vendored.PACKAGES}
    response = jsonify(ok=ok, bundles=count, runtime_installed=runtime_problem is None,
                       runtime_problem=runtime_problem, problems=problems, runtimes=installed)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-cache"
    return response
