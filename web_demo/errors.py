"""Errors as JSON for the machine-facing routes (`/api/...`, `/bundles/...`), whatever went wrong.

Why: apps, `sdk-build pull` and the page parse these answers; an HTML error page (Flask's default) tells them
nothing. A manifest that cannot be read is the operator's to fix, not a server bug, so it is a 503 naming the
file and the field; an unexpected exception is logged with its traceback and answered with a 500 in JSON. The page
itself (`/`, `/static/...`) keeps Flask's HTML errors.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from sdk_build.errors import ManifestError

JSON_PREFIXES = ("/api/", "/bundles/")


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _json(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-cache"
    return response


def register_json_errors(app: Flask) -> None:
    @app.errorhandler(ManifestError)
    def _manifest(exc: ManifestError) -> Response:
        return _json(503, str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response | HTTPException:
        if not _wants_json():
            return exc
        response = _json(exc.code or 500, exc.description or exc.name)
        if exc.code == 416 and exc.response is None:  # keep Content-Range: bytes */size for 416
            range_header = getattr(exc, "length", None)
            if range_header is not None:
                response.headers["Content-Range"] = f"bytes */{range_header}"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | HTTPException:
        app.logger.exception("unexpected error serving %s", request.path)
        if not _wants_json():
            return InternalServerError()
        return _json(500, f"internal server error ({type(exc).__name__}); see the server log")
