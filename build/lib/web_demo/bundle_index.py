"""The set of downloadable bundles: exactly the files `manifest.json` lists, nothing else on disk.

Runtime LoRA adapter files the manifest lists under `adapters` are served the same way (same checks, same URL
space), so a page or an app downloads an adapter like a bundle.

The manifest is re-read when its mtime/size changes, so bundles built while the server runs appear without a
restart. A name is only ever looked up in the manifest and must be a plain file name, so no request path can
reach a file the manifest does not list (no `..`, no sub-folders, no symlinked escapes).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

from sdk_build.manifest import AdapterEntry, BundleEntry, Manifest, load_manifest, manifest_path


class BundleUnavailable(Exception):
    """A listed bundle cannot be served as the manifest describes it (missing, or changed size on disk)."""


@dataclasses.dataclass(frozen=True)
class ResolvedBundle:
    entry: BundleEntry | AdapterEntry
    path: Path
    size: int
    mtime: float


def is_plain_name(name: str) -> bool:
    """True for a bare file name: no separators, no parent/current dir, no NUL, not hidden."""
    return bool(name) and name not in {".", ".."} and not name.startswith(".") and not any(
        sep in name for sep in ("/", "\\", "\x00")
    )


class BundleIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._manifest = Manifest(bundles=[])

    def manifest(self) -> Manifest:
        """The current manifest, reloaded only when the file changed."""
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

    def resolve(self, name: str) -> ResolvedBundle | None:
        """The listed bundle called `name`, or None when it is not listed (the caller answers 404)."""
        if not is_plain_name(name):
            return None
        manifest = self.manifest()
        entry: BundleEntry | AdapterEntry | None = manifest.find(name) or next(
            (a for a in manifest.adapters if a.file == name), None
        )
        if entry is None or not is_plain_name(entry.file):
            return None
        # A plain listed name always joins to a child of the folder; a symlink there is the operator's choice.
        path = self.directory / entry.file
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            raise BundleUnavailable(f"{name} is listed in the manifest but missing on disk; rebuild it") from exc
        if st.st_size != entry.bytes:
            raise BundleUnavailable(
                f"{name} is {st.st_size} bytes on disk but the manifest says {entry.bytes}; "
                "it changed after it was recorded, rebuild it"
            )
        return ResolvedBundle(entry=entry, path=path, size=st.st_size, mtime=st.st_mtime)
