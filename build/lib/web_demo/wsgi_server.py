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
"""

from __future__ import annotations

import errno
import os
from typing import Any, NamedTuple

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import WSGITask
from waitress.wasyncore import _DISCONNECTED

from web_demo.file_body import FileSlice

SEND_CHUNK = 2**20
DEFAULT_THREADS = 8
HAVE_SENDFILE = hasattr(os, "sendfile")


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
    """waitress's HTTP channel: SendfileChunks go out through os.sendfile; file chunks are >= SEND_CHUNK."""

    task_class = BundleTask

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendbuf_len = max(int(getattr(self, "sendbuf_len", 0)), SEND_CHUNK)

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


def make_server(app: Any, host: str, port: int, threads: int = DEFAULT_THREADS) -> Any:
    """A waitress server for `app` (not yet running: call .run()); port 0 picks a free one."""
    server = create_server(app, host=host, port=port, threads=threads)
    server.channel_class = BundleChannel
    return server
