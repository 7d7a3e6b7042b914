"""The production server: waitress, sending bundle bodies with `os.sendfile` like nginx does.

Stock waitress sends a file body (`wsgi.file_wrapper`) from its I/O loop by reading `sendbuf_len` bytes into
a Python bytes object and `send()`ing them; `sendbuf_len` is the socket's SO_SNDBUF at accept time, 16 KiB with
Linux defaults. That is two copies of every byte plus 65,536 Python-level rounds per GiB: 0.75x nginx's
throughput for one download and 0.14x for 64 parallel Range downloads on 2 cores (bench/serving.py; the
Range part was Werkzeug's 8 KiB iterator, see web_demo/file_body.py).

Here the file wrapper for a `FileSlice` body does not read: its `get()` names the bytes to send
(`SendfileChunk`: fd, offset, size) and `BundleChannel.send` hands them to `os.sendfile`, so the kernel moves
file pages to the socket without a copy through Python, as many as the socket takes per call. Every other
body (the page, static files) goes through waitress unchanged. The chunk per call is at least `SEND_CHUNK`
(1 MiB) and the kernel keeps autotuning SO_SNDBUF, so slow or distant clients behave exactly as before.
Where `os.sendfile` does not exist (Windows) the stock wrapper is used; `FileSlice` then reads 1 MiB chunks.

**Connections (`BundleServer`).** Stock waitress stops accepting at `connection_limit` (100) open connections and
only closes idle ones after `channel_timeout` (120 s), so a hundred sockets that send nothing deny everyone else,
`/api/health` included, for two minutes, again and again. Here:
- a full server never stops accepting: a new connection evicts the connection that has owed us a request the
  longest (idle since connecting, idle between keep-alive requests, or still trickling in its request), the way
  nginx reuses idle keep-alive connections when it runs out; only when every connection is busy (a request being
  processed or a response being sent) is the newcomer answered `503` and closed;
- a request must arrive whole within `request_timeout_s` of its first byte, however slowly it trickles (a
  slowloris client cannot hold a connection by sending a byte now and then); a connection with no request in
  progress is closed after `idle_timeout_s`; a response the client stopped reading, after `send_timeout_s`
  without progress;
- the limit is sized to the file descriptors the process may open (raised to the hard limit when needed), the
  loop uses poll() (select() cannot watch descriptors above 1023), request heads are capped at 64 KiB and bodies
  at the app's MAX_CONTENT_LENGTH, refused by waitress itself before it buffers them.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import resource
import time
from typing import Any, NamedTuple

from waitress.adjustments import Adjustments
from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask
from waitress.wasyncore import _DISCONNECTED

from web_demo.file_body import FileSlice

SEND_CHUNK = 2**20
DEFAULT_THREADS = 8
HAVE_SENDFILE = hasattr(os, "sendfile")
MAX_REQUEST_HEAD_BYTES = 64 * 2**10
_BUSY_BODY = b'{"error": "every connection is busy; retry in a few seconds"}'
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """How many connections the server holds and how long each may keep us waiting (see the module docstring)."""

    connection_limit: int = 1000
    request_timeout_s: float = 30.0
    idle_timeout_s: float = 30.0
    send_timeout_s: float = 120.0


class SendfileChunk(NamedTuple):
    """`size` bytes of file descriptor `fd` from `offset`, for `os.sendfile` (never a bytes object)."""

    fd: int
    offset: int
    size: int


class SendfileBuffer(ReadOnlyFileBasedBuffer):
    """waitress's `wsgi.file_wrapper`, which describes a FileSlice's next bytes instead of reading them."""

    def get(self, numbytes: int = -1, skip: bool = False) -> Any:
        file = self.file
        if skip or not isinstance(file, FileSlice):
            return super().get(numbytes, skip)
        size = self.remain if numbytes < 0 else min(numbytes, self.remain)
        return SendfileChunk(file.fileno(), file.file_offset, size)


class BundleTask(WSGITask):
    """waitress's WSGI task, offering SendfileBuffer as the environ's file wrapper."""

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        if HAVE_SENDFILE:
            environ["wsgi.file_wrapper"] = SendfileBuffer
        return environ


class BundleChannel(HTTPChannel):
    """waitress's HTTP channel: SendfileChunks go out through os.sendfile; file chunks are >= SEND_CHUNK.

    It also notes when the request now arriving began (`request_started`), for the server's request timeout.
    """

    task_class = BundleTask
    request_started: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendbuf_len = max(int(getattr(self, "sendbuf_len", 0)), SEND_CHUNK)

    def received(self, data: bytes) -> bool:
        had_partial = self.request is not None
        result = bool(super().received(data))
        if self.request is None:
            self.request_started = None
        elif not had_partial:
            self.request_started = time.time()
        return result

    @property
    def busy(self) -> bool:
        """A request is being processed or a response sent: the connection is doing work for its client."""
        return bool(self.requests) or bool(self.total_outbufs_len)

    @property
    def waiting_since(self) -> float:
        """Since when this connection has owed us a (whole) request."""
        return self.request_started if self.request_started is not None else self.last_activity

    def send(self, data: Any, do_close: bool = True) -> int:
        if not isinstance(data, SendfileChunk):
            return int(super().send(data, do_close))
        try:
            sent = os.sendfile(self.socket.fileno(), data.fd, data.offset, data.size)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as why:
            if why.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            raise
        if sent == 0 and data.size > 0:
            # End of file before the end of the body: the bundle shrank on disk. waitress closes the connection
            # on OSError, so the client sees a short body instead of this loop spinning on a writable socket.
            raise OSError(errno.EIO, "bundle file shrank while being sent")
        return sent


class BundleServer(TcpWSGIServer):
    """waitress's TCP server with BundleChannel and the connection rules of the module docstring."""

    channel_class = BundleChannel

    def __init__(self, application: Any, adj: Adjustments, limits: ConnectionLimits) -> None:
        self.limits = limits
        super().__init__(application, adj=adj, sockinfo=adj.listen[0])

    def readable(self) -> bool:
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)  # never stop listening: a full server makes room instead (handle_accept)

    def handle_accept(self) -> None:
        closing = sum(1 for c in self.active_channels.values() if c.will_close)
        if len(self.active_channels) - closing >= self.limits.connection_limit and not self._evict_one():
            self._refuse_one()
            return
        super().handle_accept()

    def _evict_one(self) -> bool:
        """Have the connection that has owed us a request the longest closed; False when every one is busy.

        It is marked, not closed here: the loop closes it on its next pass. Closing it now would free its
        descriptor for the connection about to be accepted, and an event poll() already reported for the old
        socket in this pass would then be handed to the new one.
        """
        waiting = [c for c in self.active_channels.values() if not c.busy and not c.will_close]
        if not waiting:
            return False
        min(waiting, key=lambda c: c.waiting_since).will_close = True
        return True

    def _refuse_one(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn = accepted[0]
        try:
            conn.setblocking(False)
            conn.send(_BUSY_ANSWER)
        except OSError:
            pass
        finally:
            conn.close()

    def maintenance(self, now: float) -> None:
        """Close connections that keep us waiting too long: for a request, between requests, or while reading."""
        limits = self.limits
        for channel in list(self.active_channels.values()):
            if channel.requests:
                continue  # a task is running for it
            if channel.total_outbufs_len:
                late = now - channel.last_activity > limits.send_timeout_s
            elif channel.request_started is not None:
                late = now - channel.request_started > limits.request_timeout_s
            else:
                late = now - channel.last_activity > limits.idle_timeout_s
            if late:
                channel.will_close = True


def _descriptor_budget(wanted: int) -> int:
    """Connections this process can hold: each needs a socket and, while sending, a bundle file descriptor.

    The soft RLIMIT_NOFILE is raised towards the hard limit when it is too low for `wanted` connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * wanted + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, (soft - 256) // 2))


def make_server(
    app: Any, host: str, port: int, threads: int = DEFAULT_THREADS, limits: ConnectionLimits | None = None
) -> BundleServer:
    """A waitress server for `app` (not yet running: call .run()); port 0 picks a free one.

    `host` must name one address (an IP, or a name resolving to one). Request bodies are capped at the app's
    MAX_CONTENT_LENGTH when it has one.
    """
    limits = limits or ConnectionLimits()
    limits = dataclasses.replace(limits, connection_limit=_descriptor_budget(limits.connection_limit))
    config = getattr(app, "config", {})
    adj = Adjustments(
        host=host,
        port=port,
        threads=threads,
        connection_limit=limits.connection_limit,
        cleanup_interval=1,
        channel_timeout=int(limits.send_timeout_s),
        asyncore_use_poll=True,
        max_request_header_size=MAX_REQUEST_HEAD_BYTES,
        max_request_body_size=int(config.get("MAX_CONTENT_LENGTH") or 2**30),
    )
    return BundleServer(app, adj, limits)
