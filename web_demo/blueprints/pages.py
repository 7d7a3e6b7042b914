"""The demo page and the MediaPipe runtime it imports, both served by this app (never from a CDN).

The runtime comes from `web_demo/node_modules/@mediapipe/tasks-genai` (pinned by package-lock.json, installed
with `npm ci` in web_demo/). Only the ES module bundle and the wasm folder are exposed, under /vendor/tasks-genai/.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, send_from_directory

from web_demo.runtime_files import missing_runtime

bp = Blueprint("pages", __name__)

VENDOR_PREFIX = "/vendor/tasks-genai"
_VENDOR_FILES = {"genai_bundle.mjs", "genai_bundle.mjs.map"}
_MIMETYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".map": "application/json"}


@bp.get("/")
def index() -> Response:
    response = send_from_directory(current_app.static_folder or "static", "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get(f"{VENDOR_PREFIX}/<path:name>")
def vendor(name: str) -> Response:
    root: Path = current_app.config["VENDOR_DIR"]
    missing = missing_runtime(root)
    if missing:
        abort(503, description=missing)
    allowed = name in _VENDOR_FILES or (name.startswith("wasm/") and name.count("/") == 1)
    if not allowed:
        abort(404)
    suffix = Path(name).suffix
    return send_from_directory(root, name, mimetype=_MIMETYPES.get(suffix), max_age=3600)
