"""`/bundles/<file>`: bundle downloads for the page and for apps, with HTTP caching and resumable ranges.

Bundles are up to gigabytes, so the body is streamed through the WSGI server's file wrapper, never loaded
whole. The body of a 200 or 206 is a `FileSlice` of exactly the bytes to send, which the production server
(web_demo/wsgi_server.py) hands to `os.sendfile`, so a Range answer streams like a whole file (64 parallel Range
downloads of a 1 GiB bundle went from 0.14x nginx's throughput to 1.15x; web_demo/file_body.py says why).

**Identity.** The file is opened once, by the bundle index, which also establishes the sha256 of the bytes behind
that descriptor (web_demo/bundle_index.py); the ETag (strong: equal bytes, equal tag), `X-Content-SHA256` (hex)
and `Repr-Digest` (RFC 9530) all carry that sha256 and the body is sent from the same descriptor. A file whose
bytes are not the manifest's is refused (409), never sent under the manifest's identity, so an `If-Range` resume
can never join two versions of a file.

**RFC 9110 semantics.** Preconditions are evaluated first, in the order of section 13.2.2: a failing `If-Match`
(strong comparison, `*` matches any current file) or, without one, `If-Unmodified-Since` gives 412 with a short
JSON body, never the bundle; then Werkzeug's `make_conditional` does `If-None-Match`/`If-Modified-Since` -> 304,
single `Range` -> 206 with Content-Range, unsatisfiable or malformed bytes range -> 416, and `If-Range` (strong
compare). A suffix range longer than the file (`bytes=-N`, N > size) selects the whole file (14.1.2); another unit
than bytes (14.2: ignore), several ranges (may ignore) or a weak `If-Range` validator (13.1.5: never matches) make
the whole body be sent (200).
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.http import parse_date, parse_etags
from werkzeug.wsgi import wrap_file

from web_demo.bundle_index import BundleIndex, BundleUnavailable, OpenBundle
from web_demo.file_body import FileSlice

bp = Blueprint("files", __name__)

SHA256_HEADER = "X-Content-SHA256"
# Block size for WSGI servers that iterate the body (waitress instead reads chunks the size its channel asks).
_BLOCK_SIZE = 2**20
_SUFFIX_RANGE = re.compile(r"^\s*bytes\s*=\s*-\s*(\d+)\s*$", re.IGNORECASE)


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


def _normalise_range(size: int) -> None:
    """Make the request's Range one Werkzeug answers as RFC 9110 says (see the module docstring)."""
    value = request.environ.get("HTTP_RANGE")
    if _ignorable_range(value, request.headers.get("If-Range")):
        request.environ.pop("HTTP_RANGE", None)
        return
    suffix = _SUFFIX_RANGE.match(value or "")
    if suffix and size > 0 and int(suffix.group(1)) > size:
        request.environ["HTTP_RANGE"] = f"bytes=-{size}"  # the entire representation (14.1.2)


def _precondition_failed(etag: str, mtime: float) -> str | None:
    """Why If-Match / If-Unmodified-Since fail for this file (RFC 9110 13.1.1, 13.1.4), or None."""
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        tags = parse_etags(if_match)
        if tags.star_tag or tags.contains(etag):
            return None
        return f'If-Match does not name the current file (its ETag is "{etag}")'
    since = parse_date(request.headers.get("If-Unmodified-Since"))
    if since is not None:
        modified = datetime.datetime.fromtimestamp(int(mtime), datetime.UTC)
        if modified > since:
            return f"the file was modified after If-Unmodified-Since (Last-Modified {modified:%a, %d %b %Y %H:%M:%S} GMT)"
    return None


def _set_file_name(response: Response, name: str) -> None:
    """`Content-Disposition: inline` with the file name, RFC 6266/5987-encoded when it is not ASCII."""
    try:
        name.encode("ascii")
        response.headers.set("Content-Disposition", "inline", filename=name)
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii") or "bundle"
        response.headers.set("Content-Disposition", "inline", filename=simple,
                             **{"filename*": "UTF-8''" + quote(name, safe="!#$&+-.^_`|~")})


def _error(status: int, message: str, etag: str | None = None) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    if etag:
        response.set_etag(etag)
    return response


@bp.route("/bundles/<path:name>", methods=["GET", "HEAD"], merge_slashes=False)
def bundle_file(name: str) -> Response:
    try:
        bundle = _index().open(name)
    except BundleUnavailable as exc:
        return _error(409, str(exc))
    if bundle is None:
        abort(404, description=f"{name!r} is not a bundle listed in the manifest")
    try:
        return _respond(bundle)
    finally:
        bundle.close()  # a no-op once the body (a FileSlice) has taken the descriptor over


def _respond(bundle: OpenBundle) -> Response:
    sha = bundle.sha256
    failed = _precondition_failed(sha, bundle.mtime)
    if failed:
        return _error(412, failed, etag=sha)
    for evaluated in ("HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE"):  # decided above; Werkzeug would decide again
        request.environ.pop(evaluated, None)
    _normalise_range(bundle.size)
    response = current_app.response_class([], mimetype="application/octet-stream", direct_passthrough=True)
    _set_file_name(response, bundle.entry.file)
    response.content_length = bundle.size
    response.last_modified = bundle.mtime  # type: ignore[assignment]
    max_age = int(current_app.config["BUNDLE_MAX_AGE"])
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.set_etag(sha)
    response.make_conditional(request.environ, accept_ranges=True, complete_length=bundle.size)  # in place
    _attach_body(response, bundle)
    response.headers[SHA256_HEADER] = sha
    response.headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha)).decode()}:"
    response.headers["Accept-Ranges"] = "bytes"
    # Cross-origin pages and apps may fetch bundles and read the verification headers.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = (
        f"{SHA256_HEADER}, Repr-Digest, ETag, Content-Length, Content-Range, Accept-Ranges"
    )
    return response


def _attach_body(response: Response, bundle: OpenBundle) -> None:
    """The body of a GET 200/206: a FileSlice of the identified descriptor (the slice takes it over).

    make_conditional decided status and headers; its 206 body would be an 8 KiB-block iterator the WSGI server
    cannot stream as a file, so the slice replaces it and is streamed in large chunks by the server's file
    wrapper (waitress).
    """
    if request.method != "GET" or response.status_code not in (200, 206):
        return
    start, length = 0, bundle.size
    if response.status_code == 206:
        content_range = response.content_range
        if content_range.start is None or content_range.stop is None:
            return
        start, length = content_range.start, content_range.stop - content_range.start
    fd, bundle.fd = bundle.fd, -1
    try:
        body = FileSlice(fd, start, length)
    except BaseException:
        os.close(fd)
        raise
    response.response = wrap_file(request.environ, body, _BLOCK_SIZE)  # type: ignore[arg-type]


@bp.errorhandler(404)
def _not_found(error):  # type: ignore[no-untyped-def]
    response = jsonify(error=getattr(error, "description", "not found"))
    response.status_code = 404
    return response
