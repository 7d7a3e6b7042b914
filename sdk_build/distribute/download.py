"""Download one file so that a file under its final name is always whole and has the expected sha256.

Bundles are hundreds of MB to GB over links that drop, so a download

- skips a file already present with the expected size and sha256 (a second pull transfers nothing);
- writes into `DEST/.NAME.partial` and keeps `DEST/.NAME.partial.json` (URL, expected sha256/size, the server's
  validator): a later run resumes with `Range: bytes=N-` and `If-Range: <ETag>`, so it continues only the very
  same file; a server that answers 200 instead (file changed, or no range support) restarts it from zero;
- retries a dropped connection a few times in-process, resuming each time;
- hashes while writing and compares the sha256 (and size) before the rename to the final name: on a mismatch the
  partial file and its state are deleted and `IntegrityError` is raised, so nothing wrong is left behind;
- refuses early when the server itself says the file has another size or sha256 (`X-Content-SHA256`) than the
  catalog: a stale catalog or a rebuilt file, not something to spend a gigabyte on;
- holds an exclusive lock on the partial file, so two pulls into the same folder cannot interleave bytes.

http(s) URLs go through urllib with sdk_build.distribute.transfer_guard's opener (redirects followed only to http(s); an
Authorization header is not forwarded to another host) and its stall guard: fewer than 64 KiB in a whole `timeout`
window ends the attempt as a dropped connection, resumed by the next attempt, so a server trickling bytes cannot
hold a pull for ever. `file:` URLs are read directly, with the same resume and verification, only when the
`RemoteFile` allows them (a catalog on a local disk: `sdk_build.distribute.catalog_source` decides, never a remote catalog).
A local file-system failure (a full disk, a read-only or missing folder) is a `PullError` naming the path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from sdk_build.artifacts.manifest import sha256_file
from sdk_build.distribute.transfer_guard import OPENER, StallGuard
from sdk_build.errors import IntegrityError, PullError, os_error_message
from sdk_build.system.atomic import atomic_write_json

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
SHA256_HEADER = "X-Content-SHA256"
USER_AGENT = "gemma-edge-pull/1"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes of the file present so far, total bytes)."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    bytes: int
    sha256: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    schemes: tuple[str, ...] = ("http", "https")
    """URL schemes this file may be fetched with: `file` only for a catalog read from the local disk."""


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    status: str
    """"up-to-date" (nothing transferred), "downloaded" (from byte 0) or "resumed" (continued a partial file)."""
    transferred: int
    seconds: float
    attempts: int
    resumed_from: int = 0
    replaced_bad_file: bool = False


def partial_path(dest: Path, name: str) -> Path:
    return Path(dest) / f".{name}.partial"


def state_path(dest: Path, name: str) -> Path:
    return Path(dest) / f".{name}.partial.json"


class _Dropped(Exception):
    """The transfer stopped early (connection reset, timeout, short body): resumable."""


class _Restart(Exception):
    """The server cannot continue this partial file (416, unexpected Content-Range): start from zero."""


@dataclasses.dataclass
class _Response:
    status: int
    start: int
    total: int | None
    validator: str | None
    sha256: str | None
    body: IO[bytes]


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _server_message(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read(4096).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a body we cannot read adds nothing
        return error.reason or ""
    with contextlib.suppress(ValueError):
        data = json.loads(body)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
    return body.strip()[:300] or str(error.reason)


def _open_http(
    remote: RemoteFile, offset: int, validator: str | None, timeout: float, guard: StallGuard
) -> _Response:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **remote.headers}
    if offset > 0 and validator:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            raise _Restart("the server cannot continue the partial file (416)") from None
        message = _server_message(exc)
        hint = " (is the catalog stale? fetch it again)" if exc.code in (404, 409, 410) else ""
        raise PullError(f"{remote.name}: {remote.url} answered HTTP {exc.code}: {message}{hint}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if guard.stalled:
            raise _Dropped(f"{remote.url}: {guard.reason}") from None
        raise _Dropped(f"cannot reach {remote.url}: {getattr(exc, 'reason', exc)}") from exc
    length = response.headers.get("Content-Length")
    start, total = 0, int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not match or match.group(3) == "*":
            response.close()
            raise _Restart(f"unusable Content-Range {response.headers.get('Content-Range')!r}")
        start, total = int(match.group(1)), int(match.group(3))
    elif response.status != 200:
        response.close()
        raise PullError(f"{remote.name}: {remote.url} answered HTTP {response.status}; expected 200 or 206")
    sha = response.headers.get(SHA256_HEADER)
    return _Response(
        response.status, start, total, response.headers.get("ETag"), sha.lower() if sha else None, response
    )


def _open_file(remote: RemoteFile, offset: int, validator: str | None) -> _Response:
    """A `file:` URL: the same contract as HTTP, with the file's size and mtime as its validator."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(remote.url).path))
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise PullError(f"{remote.name}: cannot read {path}: {exc.strerror}") from None
    st = os.fstat(handle.fileno())
    stamp = f'"{st.st_size}-{st.st_mtime_ns}"'
    if offset > 0 and validator == stamp and offset <= st.st_size:
        handle.seek(offset)
        return _Response(206, offset, st.st_size, stamp, None, handle)
    return _Response(200, 0, st.st_size, stamp, None, handle)


def _open(remote: RemoteFile, offset: int, validator: str | None, timeout: float, guard: StallGuard) -> _Response:
    scheme = urllib.parse.urlsplit(remote.url).scheme.lower()
    if scheme not in remote.schemes:
        raise PullError(
            f"{remote.name}: refusing to download {remote.url!r}: this catalog may only name "
            f"{' or '.join(remote.schemes)} URLs"
        )
    if scheme == "file":
        return _open_file(remote, offset, validator)
    if scheme in ("http", "https"):
        return _open_http(remote, offset, validator, timeout, guard)
    raise PullError(f"{remote.name}: cannot download {remote.url!r}: only http(s) and file URLs are supported")


@contextlib.contextmanager
def _locked_partial(path: Path) -> Iterator[IO[bytes]]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    handle = os.fdopen(fd, "r+b")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise PullError(f"another pull is downloading into {path}; wait for it to finish") from None
            raise
        yield handle
    finally:
        handle.close()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _discard(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _PartialFile:
    """The `.NAME.partial` file being filled, with the running sha256 of the bytes it holds."""

    def __init__(self, handle: IO[bytes], validator: str | None) -> None:
        self.handle = handle
        self.validator = validator
        """The server's ETag (or file stamp) for the bytes held: what `If-Range` sends when resuming."""
        self.size = os.fstat(handle.fileno()).st_size
        self.hasher = hashlib.sha256()
        self.hashed = 0
        self.received = 0

    def reset(self, validator: str | None = None) -> None:
        self.handle.truncate(0)
        self.size, self.hasher, self.hashed, self.validator = 0, hashlib.sha256(), 0, validator

    def catch_up(self) -> None:
        """Hash bytes already on disk (from an earlier run) before asking the server for the rest."""
        self.handle.seek(self.hashed)
        while self.hashed < self.size and (chunk := self.handle.read(min(CHUNK_BYTES, self.size - self.hashed))):
            self.hasher.update(chunk)
            self.hashed += len(chunk)

    def append(self, chunk: bytes) -> None:
        self.handle.seek(self.size)
        self.handle.write(chunk)
        self.hasher.update(chunk)
        self.size += len(chunk)
        self.hashed = self.size
        self.received += len(chunk)


def _resumable_validator(state: Path, remote: RemoteFile, size: int) -> str | None:
    """The validator to resume with, or None when the partial file cannot be trusted to be this file's prefix."""
    saved = _read_state(state)
    validator = saved.get("validator")
    same_file = saved.get("sha256") == remote.sha256.lower() and saved.get("bytes") == remote.bytes
    if same_file and isinstance(validator, str) and validator and 0 < size <= remote.bytes:
        return validator
    return None


def _refuse(remote: RemoteFile, what: str, part: Path, state: Path) -> IntegrityError:
    _discard(part, state)
    return IntegrityError(
        f"{remote.name}: {what}: the catalog is stale or the file was rebuilt; fetch the catalog again. "
        "Nothing was kept"
    )


def _fetch_into(
    partial: _PartialFile, remote: RemoteFile, paths: tuple[Path, Path], timeout: float, report: ProgressCallback
) -> bool:
    """One request: continue (206) or restart (200) `partial`; returns whether it continued a range."""
    with StallGuard(timeout) as guard:
        return _transfer(partial, remote, paths, timeout, report, guard)


def _transfer(
    partial: _PartialFile,
    remote: RemoteFile,
    paths: tuple[Path, Path],
    timeout: float,
    report: ProgressCallback,
    guard: StallGuard,
) -> bool:
    part, state = paths
    response = _open(remote, partial.size, partial.validator, timeout, guard)
    try:
        expected = remote.sha256.lower()
        if response.sha256 and response.sha256 != expected:
            raise _refuse(
                remote, f"the server says its sha256 is {response.sha256}, the catalog says {expected}", part, state
            )
        if response.total is not None and response.total != remote.bytes:
            raise _refuse(
                remote, f"the server's file is {response.total} bytes, the catalog says {remote.bytes}", part, state
            )
        ranged = response.status == 206
        if ranged and response.start != partial.size:
            raise _Restart(f"asked for byte {partial.size}, the server sent from byte {response.start}")
        if not ranged:
            partial.reset(partial.validator)  # the server sends the whole file: a new validator or no range support
        if response.validator != partial.validator:
            partial.validator = response.validator
            atomic_write_json(
                state, {"url": remote.url, "sha256": expected, "bytes": remote.bytes, "validator": partial.validator}
            )
        read = getattr(response.body, "read1", response.body.read)  # read1: back after each arrival, for the guard
        while partial.size < remote.bytes:
            try:
                chunk = read(min(CHUNK_BYTES, remote.bytes - partial.size))
            except (OSError, http.client.HTTPException) as exc:
                if guard.stalled:
                    raise _Dropped(guard.reason) from None
                raise _Dropped(f"the connection dropped ({type(exc).__name__})") from exc
            if not chunk:
                raise _Dropped(guard.reason if guard.stalled else "the server closed the connection early")
            guard.progress(len(chunk))
            partial.append(chunk)
            report(partial.size, remote.bytes)
        return ranged
    finally:
        partial.handle.flush()
        response.body.close()


def download(
    remote: RemoteFile,
    dest: Path,
    *,
    progress: ProgressCallback | None = None,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    backoff_s: float = 0.5,
) -> DownloadResult:
    """Make `dest/remote.name` a verified copy of `remote` (see the module docstring); return what it took."""
    try:
        return _download(remote, Path(dest), progress, retries, timeout, backoff_s)
    except OSError as exc:
        part = partial_path(dest, remote.name)
        try:
            kept = f"; what arrived is kept in {part}: run the same pull again to resume" if part.is_file() else ""
        except OSError:
            kept = ""
        raise PullError(f"{remote.name}: " + os_error_message(exc, f"cannot write into {dest}") + kept) from None


def _download(
    remote: RemoteFile,
    dest: Path,
    progress: ProgressCallback | None,
    retries: int,
    timeout: float,
    backoff_s: float,
) -> DownloadResult:
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / remote.name
    expected = remote.sha256.lower()
    report = progress or (lambda done, total: None)
    started = time.monotonic()
    replaced = False
    if final.is_file():
        if final.stat().st_size == remote.bytes and sha256_file(final) == expected:
            report(remote.bytes, remote.bytes)
            return DownloadResult(remote.name, final, "up-to-date", 0, time.monotonic() - started, 0)
        replaced = True  # wrong bytes under the final name: fetched again, replaced only once verified
    part, state = partial_path(dest, remote.name), state_path(dest, remote.name)
    with _locked_partial(part) as handle:
        partial = _PartialFile(handle, None)
        partial.validator = _resumable_validator(state, remote, partial.size)
        if partial.validator is None:
            partial.reset()
        resumed_from, attempts, restarts, ranged = partial.size, 0, 0, False
        try:
            while True:
                partial.catch_up()
                report(partial.size, remote.bytes)
                if partial.size >= remote.bytes:
                    break
                attempts += 1
                try:
                    ranged = _fetch_into(partial, remote, (part, state), timeout, report) or ranged
                except _Restart as exc:
                    restarts += 1
                    if restarts > 2:
                        raise PullError(f"{remote.name}: {exc}; gave up after {restarts} restarts") from None
                    partial.reset()
                except _Dropped as exc:
                    _retry_or_fail(remote, exc, attempts, retries, partial.size, part, backoff_s)
            os.fsync(handle.fileno())
            actual = partial.hasher.hexdigest()
            if partial.size != remote.bytes or actual != expected:
                _discard(part, state)
                raise IntegrityError(
                    f"{remote.name}: the downloaded bytes have sha256 {actual} ({partial.size} bytes), the catalog "
                    f"says {expected} ({remote.bytes} bytes): the file on the server is not the one the catalog "
                    "describes (changed or tampered with). Nothing was kept; fetch the catalog again or tell its "
                    "publisher"
                )
            os.replace(part, final)
            _discard(state)
        except BaseException:
            if partial.size == 0:  # nothing worth resuming: leave no empty partial file behind
                _discard(part, state)
            raise
    status = "resumed" if (resumed_from > 0 or ranged) else "downloaded"
    return DownloadResult(
        remote.name, final, status, partial.received, time.monotonic() - started, attempts, resumed_from, replaced
    )


def _retry_or_fail(
    remote: RemoteFile, exc: Exception, attempts: int, retries: int, size: int, part: Path, backoff_s: float
) -> None:
    if attempts > retries:
        raise PullError(
            f"{remote.name}: {exc} after {size} of {remote.bytes} bytes ({attempts} attempts); the partial download "
            f"is kept in {part}: run the same pull again to resume it"
        ) from None
    time.sleep(backoff_s * 2 ** (attempts - 1))
