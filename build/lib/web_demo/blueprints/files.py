"""`/bundles/<file>`: bundle downloads for the page and for apps, with HTTP caching and resumable ranges.

Bundles are up to gigabytes, so the body is streamed through the WSGI server's file wrapper, never loaded
whole. The body of a 200 or 206 is a `FileSlice` of exactly the bytes to send, which the production server
(web_demo/wsgi_server.py) hands to `os.sendfile`, so a Range answer streams like a whole file (64 parallel Range
downloads of a 1 GiB bundle went from 0.14x nginx's throughput to 1.15x; web_demo/file_body.py says why).
Werkzeug's `send_file(conditional=True)` still decides status and headers, with the RFC 9110 semantics we
rely on: single `Range` -> 206 with Content-Range, unsatisfiable or malformed bytes range -> 416, `If-Range`
(strong ETag compare), `If-None-Match` -> 304. Werkzeug would also answer 416 to multi-range
requests, to unknown range units, and would let a weak `If-Range` validator match; RFC 9110 says to ignore
the former and that a weak tag never matches, so `_ignorable_range` drops such a Range and the whole body is
sent (200). The ETag is the manifest's sha256 (strong: equal bytes, equal tag) and needs no hashing per request.
The sha256 is also sent as `X-Content-SHA256` (hex) and `Repr-Digest` (RFC 9530) so clients can verify a
finished download without trusting the transport.
"""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file
from werkzeug.wsgi import wrap_file

from web_demo.bundle_index import BundleIndex, BundleUnavailable, ResolvedBundle
from web_demo.file_body import FileSlice

bp = Blueprint("files", __name__)

SHA256_HEADER = "X-Content-SHA256"
# Block size for WSGI servers that iterate the body (waitress instead reads chunks the size its channel asks).
_BLOCK_SIZE = 2**20


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
    _stream_exact_body(response, bundle)
    response.headers[SHA256_HEADER] = sha
    response.headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
    response.headers["Accept-Ranges"] = "bytes"
    # Cross-origin pages and apps may fetch bundles and read the verification headers.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = (
        f"{SHA256_HEADER}, Repr-Digest, ETag, Content-Length, Content-Range, Accept-Ranges"
    )
    return response


def _stream_exact_body(response: Response, bundle: ResolvedBundle) -> None:
    """Swap send_file's body for a FileSlice of the bytes it decided to send (headers and status stay its own).

    send_file answers a 206 with an 8 KiB-block iterator that the WSGI server cannot stream as a file; the
    slice it replaces it with is streamed in large chunks by the server's file wrapper (waitress).
    """
    if request.method != "GET" or response.status_code not in (200, 206):
        return
    if response.status_code == 206:
        content_range = response.content_range
        if content_range.start is None or content_range.stop is None:
            return
        start, length = content_range.start, content_range.stop - content_range.start
    else:
        start, length = 0, bundle.size
    old_body = response.response
    body = wrap_file(request.environ, FileSlice(bundle.path, start, length), _BLOCK_SIZE)  # type: ignore[arg-type]
    response.response = body
    close = getattr(old_body, "close", None)
    if callable(close):
        close()


@bp.errorhandler(404)
def _not_found(error):  # type: ignore[no-untyped-def]
    response = jsonify(error=getattr(error, "description", "not found"))
    response.status_code = 404
    return response
