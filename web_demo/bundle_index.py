"""The set of downloadable bundles: exactly the files `manifest.json` lists, nothing else on disk.

Runtime LoRA adapter files the manifest lists under `adapters` are served the same way (same checks, same URL
space), so a page or an app downloads an adapter like a bundle.

The manifest is re-read when its mtime/size changes, so bundles built while the server runs appear without a
restart. A name is only ever looked up in the manifest and must be a plain file name, so no request path can
reach a file the manifest does not list (no `..`, no sub-folders, no symlinked escapes).

**Identity.** `open` hands out an open file descriptor together with the sha256 of the bytes behind it, and the
response is sent from that descriptor, so the ETag and `X-Content-SHA256` a client sees are those of the bytes it
receives. The manifest is read and the file opened under the folder's shared manifest lock
(`sdk_build.artifacts.manifest.reading`), so a build publishing a new file and its entry is never seen half way. The open
file is trusted to be the manifest's when it carries the modification time the entry recorded at publication;
otherwise it is hashed first (`web_demo.file_identity`) and refused when its bytes are not the entry's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import threading
from pathlib import Path

from sdk_build.artifacts.file_names import is_plain_file_name
from sdk_build.artifacts.manifest import AdapterEntry, BundleEntry, Manifest, load_manifest, manifest_path, reading
from web_demo.file_identity import DigestCache


class BundleUnavailable(Exception):
    """A listed bundle cannot be served as the manifest describes it (missing, changed on disk)."""


@dataclasses.dataclass
class OpenBundle:
    """A listed file, open: send from `fd` (the caller owns it and must close it), whose bytes have `sha256`."""

    entry: BundleEntry | AdapterEntry
    fd: int
    size: int
    mtime: float
    sha256: str

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def is_plain_name(name: str) -> bool:
    """True for a bare file name (sdk_build.artifacts.file_names): no separators, not hidden, no control characters."""
    return is_plain_file_name(name)


class BundleIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._manifest = Manifest(bundles=[])
        self.digests = DigestCache()

    def manifest(self) -> Manifest:
        """The current manifest, reloaded only when the file changed; a corrupt one raises ManifestError."""
        path = manifest_path(self.directory)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        with self._lock:
            if stamp != self._stamp:
                self._manifest = load_manifest(self.directory)
                self._stamp = stamp
            return self._manifest

    def entries(self, **filters: str | None) -> list[BundleEntry]:
        """Entries whose fields equal every non-empty filter (e.g. target='web-gpu', quantization='dynamic_int8')."""
        wanted = {k: v for k, v in filters.items() if v}
        return [e for e in self.manifest().bundles if all(str(getattr(e, k)) == v for k, v in wanted.items())]

    def open(self, name: str) -> OpenBundle | None:
        """The listed file called `name`, open and identified, or None when it is not listed (the caller answers 404).

        Raises BundleUnavailable when it is listed but missing, or its bytes are not the ones the manifest describes.
        """
        if not is_plain_name(name):
            return None
        with reading(self.directory):
            manifest = self.manifest()
            entry: BundleEntry | AdapterEntry | None = manifest.find(name) or next(
                (a for a in manifest.adapters if a.file == name), None
            )
            if entry is None:
                return None
            # A plain listed name always joins to a child of the folder; a symlink there is the operator's choice.
            path = self.directory / entry.file
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise BundleUnavailable(f"{name} is listed in the manifest but missing on disk; rebuild it") from None
            except OSError as exc:
                raise BundleUnavailable(f"{name} cannot be opened ({exc.strerror})") from None
        try:
            return self._identified(entry, fd)
        except BaseException:
            os.close(fd)
            raise

    def _identified(self, entry: BundleEntry | AdapterEntry, fd: int) -> OpenBundle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleUnavailable(f"{entry.file} is not a regular file")
        if st.st_size != entry.bytes:
            raise BundleUnavailable(
                f"{entry.file} is {st.st_size} bytes on disk but the manifest says {entry.bytes}; "
                "it changed after it was recorded, rebuild it"
            )
        expected = entry.sha256.lower()
        if entry.mtime_ns is not None and st.st_mtime_ns == entry.mtime_ns:
            return OpenBundle(entry, fd, st.st_size, st.st_mtime, expected)
        actual = self.digests.sha256(fd)
        if actual != expected:
            raise BundleUnavailable(
                f"{entry.file} on disk has sha256 {actual}, the manifest says {expected}: it was changed after it "
                "was recorded (rebuilt in place?); rebuild it with sdk-build so file and manifest agree"
            )
        return OpenBundle(entry, fd, st.st_size, st.st_mtime, actual)

    def check(self, name: str) -> None:
        """Raise BundleUnavailable unless `name` is listed and servable exactly as the manifest describes it."""
        opened = self.open(name)
        if opened is None:
            raise BundleUnavailable(f"{name!r} is not a plain file name listed in the manifest")
        with contextlib.closing(opened):
            pass
