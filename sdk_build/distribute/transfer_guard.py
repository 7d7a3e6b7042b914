"""HTTP(S) for pull: a watchdog that ends transfers which stall, and an opener that only goes where it may.

Why a watchdog: a socket timeout bounds one read, so a server that sends a byte every few seconds (or one header
line at a time) keeps every read under the timeout and holds a pull for ever. `StallGuard` counts the bytes that
actually arrive and, when fewer than `min_bytes` arrive in a whole window of `window_s` seconds (response headers
included: no body byte at all counts as nothing), shuts the connection's socket down from its own thread, so the
blocked read returns at once and the transfer is retried or reported as stalled.

Why a restricted opener: a catalog from elsewhere decides which URLs pull opens. Redirects are followed only to
http(s) (urllib would also follow one to ftp://) and never carry an Authorization header to another host.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Self

from sdk_build.errors import PullError

MIN_PROGRESS_BYTES = 64 * 2**10
"""Fewer bytes than this in a whole window is a stall (64 KiB per 30 s window is about 2 KB/s)."""

FOLLOWED_SCHEMES = ("http", "https")

_current = threading.local()


class StallGuard:
    """Watch one transfer; see the module docstring. Use as a context manager around opening and reading it."""

    def __init__(self, window_s: float, min_bytes: int = MIN_PROGRESS_BYTES) -> None:
        self.window_s = max(0.5, float(window_s))
        self.min_bytes = min_bytes
        self.stalled = False
        self._sockets: list[socket.socket] = []
        self._window_start = time.monotonic()
        self._window_bytes = 0
        self._total = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pull-stall-guard", daemon=True)

    @property
    def reason(self) -> str:
        return (
            f"the transfer stalled: fewer than {self.min_bytes} bytes arrived in {self.window_s:g} s "
            f"({self._total} bytes in all)"
        )

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.stalled:
                self._shut(sock)

    def progress(self, count: int) -> None:
        with self._lock:
            self._window_bytes += count
            self._total += count

    def __enter__(self) -> Self:
        self._previous = getattr(_current, "guard", None)
        _current.guard = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _current.guard = self._previous
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        tick = min(0.25, self.window_s / 4)
        while not self._done.wait(tick):
            with self._lock:
                now = time.monotonic()
                if now - self._window_start < self.window_s:
                    continue
                if self._window_bytes >= self.min_bytes:
                    self._window_start, self._window_bytes = now, 0
                    continue
                self.stalled = True
                for sock in self._sockets:
                    self._shut(sock)
                return

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _watched(connection: http.client.HTTPConnection) -> None:
    guard: StallGuard | None = getattr(_current, "guard", None)
    if guard is not None and connection.sock is not None:
        guard.attach(connection.sock)


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watched(self)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watched(self)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (Hugging Face sends files to a CDN) only to http(s), without credentials to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        target = urllib.parse.urljoin(req.full_url, newurl)
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if scheme not in FOLLOWED_SCHEMES:
            raise PullError(f"{req.full_url} redirects to {scheme}: URL {target!r}; only http(s) is followed")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


OPENER = urllib.request.build_opener(_GuardedHTTPHandler, _GuardedHTTPSHandler, _SafeRedirects)
"""The opener pull uses for every http(s) request: guarded (when a StallGuard is active) and safely redirected."""


def read_body(response: Any, guard: StallGuard, limit: int) -> bytes:
    """Read a whole (small) response body: at most `limit` bytes (more raises ValueError), counting progress;
    a stall raises PullError."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = response.read1(1 << 16) if hasattr(response, "read1") else response.read(1 << 16)
        if not chunk:
            if guard.stalled:
                raise PullError(guard.reason)
            return b"".join(parts)
        guard.progress(len(chunk))
        size += len(chunk)
        if size > limit:
            raise ValueError(f"more than {limit} bytes")
        parts.append(chunk)
