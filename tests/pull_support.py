"""Network stand-ins for the pull tests: the faults and hosts around the thing under test, never the client itself.

- `CuttingProxy`: a TCP proxy in front of the real web demo server that drops the first bundle download after N
  bytes (a connection lost half way), and records every request so a test can see the Range/If-Range it sent.
- `StaticHost`: a plain static file host with single-range support, as a CDN or an object store serves
  `catalog.json` and bundles; with `hf_repo` set it answers Hugging Face's `/{repo}/resolve/{revision}/{file}`
  paths with the headers huggingface_hub reads (X-Repo-Commit, ETag), so `hf:` catalogs run against it through
  the real huggingface_hub via HF_ENDPOINT.
- `HostileHost`: a server whose every byte the test writes: trickles, lies, redirects, endless bodies.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self


class CuttingProxy:
    """Forward loopback connections to `upstream`; the first `cuts` bundle responses stop after `cut_after` bytes."""

    def __init__(self, upstream: tuple[str, int], cut_after: int, cuts: int = 1, path_marker: str = "/bundles/"):
        self.upstream = upstream
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.path_marker = path_marker
        self.requests: list[str] = []
        self.cut_count = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        request = bytearray()
        request_seen = threading.Event()

        def pump_up() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    request.extend(data)
                    if b"\r\n\r\n" in request:
                        request_seen.set()
                    upstream.sendall(data)
            request_seen.set()

        threading.Thread(target=pump_up, daemon=True).start()
        request_seen.wait(timeout=10)
        head = bytes(request).split(b"\r\n\r\n", 1)[0].decode("latin-1")
        with self._lock:
            self.requests.append(head)
            cut = self.path_marker in head.split("\r\n", 1)[0] and self.cuts_left > 0
            if cut:
                self.cuts_left -= 1
        sent = 0
        try:
            while data := upstream.recv(65536):
                if cut and sent + len(data) >= self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    with self._lock:
                        self.cut_count += 1
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def bundle_requests(self) -> list[str]:
        return [r for r in self.requests if self.path_marker in r.split("\r\n", 1)[0]]


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _handler(root: Path, hf_repo: str | None, commit: str, log: list[dict[str, str]]) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet test output
            pass

        def _file(self) -> Path | None:
            path = self.path.split("?", 1)[0]
            if hf_repo is not None:
                prefix = f"/{hf_repo}/resolve/"
                if not path.startswith(prefix):
                    return None
                path = "/" + path[len(prefix) :].split("/", 1)[1]  # drop the revision
            name = path.lstrip("/")
            candidate = root / name
            if "/" in name or name.startswith(".") or not candidate.is_file():
                return None
            return candidate

        def do_HEAD(self) -> None:
            self._respond(body=False)

        def do_GET(self) -> None:
            self._respond(body=True)

        def _respond(self, body: bool) -> None:
            log.append({"method": self.command, "path": self.path, **{k: v for k, v in self.headers.items()}})
            path = self._file()
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
            start, status = 0, 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and self.headers.get("If-Range", etag) == etag and int(match.group(1)) < len(data):
                start, status = int(match.group(1)), 206
            chunk = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if hf_repo is not None:
                self.send_header("X-Repo-Commit", commit)
            self.end_headers()
            if body:
                self.wfile.write(chunk)

    return Handler


@contextlib.contextmanager
def static_host(
    root: Path, hf_repo: str | None = None, commit: str = "0123456789abcdef" * 2 + "01234567"
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Serve `root`'s plain files on a loopback port; yields (base URL, request log)."""
    log: list[dict[str, str]] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(root), hf_repo, commit, log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class HostileHost:
    """A loopback HTTP server whose answers are written by the test, byte by byte: `routes[path](sock, head)`.

    Each handler gets the raw client socket and the request head; it may send anything, as slowly as it likes, and
    may return when done (the connection is then closed). `sent[path]` counts the bytes each route sent.
    """

    def __init__(self, routes: dict[str, Callable[[socket.socket, str], None]]) -> None:
        self.routes = routes
        self.sent: dict[str, int] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = bytearray()
        with contextlib.suppress(OSError):
            client.settimeout(10)
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(4096)
                if not data:
                    break
                head += data
        text = head.decode("latin-1")
        self.requests.append(text)
        path = text.split(" ", 2)[1] if text.count(" ") >= 2 else ""
        handler = self.routes.get(path.split("?", 1)[0])
        counting = _CountingSocket(client, self.sent, path)
        try:
            if handler is None:
                counting.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                handler(counting, text)  # type: ignore[arg-type]
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()


class _CountingSocket:
    def __init__(self, sock: socket.socket, sent: dict[str, int], path: str) -> None:
        self._sock, self._sent, self._path = sock, sent, path

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self._sent[self._path] = self._sent.get(self._path, 0) + len(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def http_answer(body: bytes, status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response with Content-Length and Connection: close."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
