"""The download client of the serving benchmark: one GET, or N parallel Range GETs, into one preallocated buffer.

The client must not be what limits the figure, so it does no per-chunk work in Python: every connection reads
with `readinto` straight into its slice of a buffer that was allocated and touched before the clock starts (no
page faults, no bytes objects, no hashing while timed), and the socket keeps Linux's receive-buffer autotuning
(tcp_rmem, up to tens of MiB). The same client measures both servers, so whatever it costs is the same on both
sides; a server it could not saturate would show as both servers reaching the same ceiling.

After the clock stops, the whole buffer (the file reassembled from its slices) is hashed and compared with the
expected sha256, so a wrong byte anywhere, a missing slice or a short read is caught, and every failed request
is counted as an error with its reason.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import http.client
import threading
import time

READ_TIMEOUT_S = 300.0


class TransferError(Exception):
    """One request went wrong (status, headers, short body); the text says how."""


@dataclasses.dataclass(frozen=True)
class Transfer:
    """One timed download of the whole file (single stream or assembled from parallel slices)."""

    streams: int
    seconds: float
    bytes_received: int
    errors: tuple[str, ...]
    sha256_ok: bool | None  # None: the bytes were not kept, so not checked (the curl cross-check)

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_received / self.seconds if self.seconds > 0 else 0.0


def slices(size: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous (start, stop) byte slices, stop exclusive, that together cover [0, size) exactly."""
    if parts < 1 or parts > size:
        raise ValueError(f"cannot cut {size} bytes into {parts} slices")
    bounds = [size * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


class DownloadBuffer:
    """A buffer the size of the file, faulted in once and zeroed before each run (stale bytes never pass a check)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data = bytearray(size)
        self._raw = (ctypes.c_char * size).from_buffer(self.data)
        self.clear()

    def clear(self) -> None:
        ctypes.memset(ctypes.addressof(self._raw), 1, self.size)  # touch every page now, outside the timing
        ctypes.memset(ctypes.addressof(self._raw), 0, self.size)

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def release(self) -> None:
        del self._raw


def fetch_into(host: str, port: int, path: str, view: memoryview, start: int | None) -> int:
    """GET `path` (a Range request from `start` when it is given) into `view`; return the bytes received.

    Raises TransferError when the status, Content-Length or Content-Range is not what this slice needs, or when
    the body ends early. Receiving more than asked for is an error too (the server ignored the range).
    """
    want = len(view)
    headers = {"Accept-Encoding": "identity"}
    if start is not None:
        headers["Range"] = f"bytes={start}-{start + want - 1}"
    connection = http.client.HTTPConnection(host, port, timeout=READ_TIMEOUT_S)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        expected_status = 200 if start is None else 206
        if response.status != expected_status:
            raise TransferError(f"HTTP {response.status} (expected {expected_status})")
        length = response.getheader("Content-Length")
        if length is None or int(length) != want:
            raise TransferError(f"Content-Length {length} (expected {want})")
        if start is not None:
            content_range = response.getheader("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-{start + want - 1}/"):
                raise TransferError(f"Content-Range {content_range!r} (expected bytes {start}-{start + want - 1}/...)")
        received = 0
        while received < want:
            n = response.readinto(view[received:])
            if not n:
                break
            received += n
        if received < want:
            raise TransferError(f"short read: {received} of {want} bytes")
        if response.read(1):
            raise TransferError("the body is longer than Content-Length")
        return received
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        connection.close()


def download(host: str, port: int, path: str, buffer: DownloadBuffer, expected_sha256: str, streams: int) -> Transfer:
    """Download the whole file once: a plain GET when streams == 1, else `streams` parallel Range GETs.

    The clock runs from the moment every thread is released (each opens its own connection then) to the last
    byte of the slowest slice.
    """
    buffer.clear()
    view = memoryview(buffer.data)
    parts = slices(buffer.size, streams)
    received = [0] * streams
    errors: list[str] = []
    errors_lock = threading.Lock()
    go = threading.Event()

    def worker(index: int) -> None:
        begin, end = parts[index]
        go.wait()
        try:
            received[index] = fetch_into(host, port, path, view[begin:end], None if streams == 1 else begin)
        except TransferError as exc:
            with errors_lock:
                errors.append(f"slice {index} [{begin}, {end}): {exc}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    view.release()
    ok = buffer.sha256() == expected_sha256.lower()
    return Transfer(streams, seconds, sum(received), tuple(sorted(errors)), ok)
