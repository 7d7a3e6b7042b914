"""The demo page and the LLM runtimes it imports, all served by this app (never from a CDN).

The runtimes come from `web_demo/node_modules` (pinned by package-lock.json, installed with `npm ci` in
web_demo/): `@mediapipe/tasks-genai` for `.task` bundles and `@litert-lm/core` (+ `@litertjs/wasm-utils`) for
`.litertlm` ones. `web_demo.vendor` lists which of their files are exposed, under /vendor/<name>/.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, send_from_directory

from web_demo import vendor as vendored
from web_demo.runtime_files import missing_package

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> Response:
    response = send_from_directory(current_app.static_folder or "static", "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/vendor/<package>/<path:name>")
def vendor(package: str, name: str) -> Response:
    spec = vendored.package(package)
    if spec is None:
        abort(404)
    root = Path(current_app.config[spec.config_key])
    missing = missing_package(spec, root)
    if missing:
        abort(503, description=missing)
    path = spec.file(root, name)
    if path is None:
        abort(404)
    return send_from_directory(root, name, mimetype=vendored.MIMETYPES.get(Path(name).suffix), max_age=3600)
