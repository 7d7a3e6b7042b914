"""gemma-edge web demo: a Flask app (factory + blueprints) serving the WebGPU chat page, the bundles and an API.

`create_app(config)` is what tests, `python -m web_demo` and any WSGI server call. Blueprints split the three
concerns: `pages` (the HTML/JS page and the locally pinned runtimes, see `web_demo.vendor`), `files` (bundle
downloads with Range/ETag, only for files the manifest lists) and `api` (manifest listing, benchmark results).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from web_demo.bench_store import BenchStore
from web_demo.bundle_index import BundleIndex
from web_demo.errors import register_json_errors
from web_demo.vendor import DEFAULT_DIRS, PACKAGES

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_VENDOR_DIR = DEFAULT_DIRS["VENDOR_DIR"]

DEFAULT_CONFIG: dict[str, Any] = {
    # Folder holding the bundles and their manifest.json (sdk_build's output folder).
    "BUNDLES_DIR": Path("bundles"),
    # Optional folder where every POSTed benchmark result is also written as JSON (None: memory only).
    "RESULTS_DIR": None,
    # The npm-installed runtimes (pinned by web_demo/package-lock.json): VENDOR_DIR is @mediapipe/tasks-genai,
    # LITERT_LM_DIR @litert-lm/core, LITERTJS_WASM_UTILS_DIR the @litertjs/wasm-utils it imports.
    **DEFAULT_DIRS,
    # Benchmark results kept in memory (oldest dropped first), by count and by bytes of JSON (web_demo/bench_store.py).
    "MAX_RESULTS": 200,
    "MAX_RESULTS_BYTES": 16 * 2**20,
    # Largest accepted request body (one benchmark result's JSON); bundles are only ever downloaded, never uploaded.
    "MAX_CONTENT_LENGTH": 256 * 2**10,
    # What one server run may write into RESULTS_DIR.
    "MAX_RESULTS_DIR_BYTES": 256 * 2**20,
    # Cache-Control max-age for bundle files; the ETag (sha256) makes revalidation cheap either way.
    "BUNDLE_MAX_AGE": 3600,
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides DEFAULT_CONFIG; BUNDLES_DIR must exist (a missing manifest is empty)."""
    from web_demo.blueprints import api, files, pages

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(DEFAULT_CONFIG)
    app.config.update(config or {})
    bundles_dir = Path(app.config["BUNDLES_DIR"]).resolve()
    if not bundles_dir.is_dir():
        raise ValueError(f"bundle folder {bundles_dir} does not exist; build bundles first or pass --bundles DIR")
    app.config["BUNDLES_DIR"] = bundles_dir
    for spec in PACKAGES:
        app.config[spec.config_key] = Path(app.config[spec.config_key]).resolve()
    results_dir = app.config["RESULTS_DIR"]
    app.extensions["bundle_index"] = BundleIndex(bundles_dir)
    app.extensions["bench_store"] = BenchStore(
        max_results=int(app.config["MAX_RESULTS"]), directory=Path(results_dir) if results_dir else None,
        max_result_bytes=int(app.config["MAX_CONTENT_LENGTH"]), max_total_bytes=int(app.config["MAX_RESULTS_BYTES"]),
        max_directory_bytes=int(app.config["MAX_RESULTS_DIR_BYTES"]),
    )
    app.register_blueprint(pages.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(api.bp)
    register_json_errors(app)

    @app.after_request
    def _security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


__all__ = ["create_app", "DEFAULT_CONFIG"]
