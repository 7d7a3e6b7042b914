"""`/bundles/<file>`: bundle downloads for the page and for apps, with HTTP caching and resumable ranges.

Bundles are up to gigabytes, so the body is streamed through the WSGI server's file wrapper (waitress reads it
in chunks; nothing loads the whole file). Werkzeug's `send_file(conditional=True)` implements the RFC 9110
semantics we rely on: single `Range` -> 206 with Content-Range, unsatisfiable or malformed bytes range -> 416,
`If-Range` (strong ETag compare), `If-None-Match` -> 304. Werkzeug would also answer 416 to multi-range
requests, to unknown range units, and would let a weak `If-Range` validator match; RFC 9110 says to ignore
the former and that a weak tag never matches, so `_ignorable_range` drops such a Range and the whole body is
sent (200). The ETag is the manifest's sha256 (strong: equal bytes, equal tag) and needs no hashing per request.
The sha256 is also sent as `X-Content-SHA256` (hex) and `Repr-Digest` (RFC 9530) so clients can verify a
finished download without trusting the transport.
"""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file

from web_demo.bundle_index import BundleIndex, BundleUnavailable

bp = Blueprint("files", __name__)

SHA256_HEADER = "X-Content-SHA256"


def _index() -> BundleIndex:
    return current_app.extensions["bundle_index"]


def _ignorable_range(value: str | None, if_range: str | None) -> bool:
    """A Range we answer with the whole body: another unit than bytes (RFC 9110 14.2: ignore), several ranges
    (may ignore), or an If-Range with a weak entity tag (13.1.5: never matches, so send everything)."""
    if not value:
        return False
    unit, _, spec = value.partition("=")
    weak_if_range = if_range is not None and if_range.strip().startswith("W/")
    return unit.strip().lower() != "bytes" or "," in spec or weak_if_range


@bp.route("/bundles/<path:name>", methods=["GET", "HEAD"], merge_slashes=False)
def bundle_file(name: str) -> Response:
    if _ignorable_range(request.headers.get("Range"), request.headers.get("If-Range")):
        request.environ.pop("HTTP_RANGE", None)
    try:
        bundle = _index().resolve(name)
    except BundleUnavailable as exc:
        response = jsonify(error=str(exc))
        response.status_code = 409
        return response
    if bundle is None:
        abort(404, description=f"{name!r} is not a bundle listed in the manifest")
    sha = bundle.entry.sha256.lower()
    response = send_file(
        bundle.path,
        mimetype="application/octet-stream",
        as_attachment=False,
        download_name=bundle.entry.file,
        conditional=True,
        etag=sha,
        last_modified=bundle.mtime,
        max_age=int(current_app.config["BUNDLE_MAX_AGE"]),
    )
    response.headers[SHA256_HEADER] = sha
    response.headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
    response.headers["Accept-Ranges"] = "bytes"
    # Cross-origin pages and apps may fetch bundles and read the verification headers.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = (
        f"{SHA256_HEADER}, Repr-Digest, ETag, Content-Length, Content-Range, Accept-Ranges"
    )
    return response


@bp.errorhandler(404)
def _not_found(error):  # type: ignore[no-untyped-def]
    response = jsonify(error=getattr(error, "description", "not found"))
    response.status_code = 404
    return response
