"""User-facing errors.

Every failure a user can cause (bad path, wrong architecture, unknown recipe, a full disk...) is raised as a
`BuildError` whose message says what is wrong and what to do; the CLI prints it as one line and exits non-zero,
instead of a traceback from deep inside a converter. `details` carries extra lines this program composed (a
child process's last log lines), printed indented under that one line.

File-system failures arrive as `OSError` from anywhere (our writes, a converter's, the bundler's);
`os_error_message` turns one into a line naming the path, the cause and what to do, so the CLI never shows
a raw traceback for a full disk, a read-only folder or a path that is a file.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


class BuildError(Exception):
    """A problem with the user's input or environment, with an actionable message."""

    def __init__(self, message: str = "", *, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class SourceError(BuildError):
    """A checkpoint reference could not be resolved or is not a supported Gemma 3 model."""


class SpecError(BuildError):
    """A build variant is inconsistent (unknown recipe, ekv smaller than a prefill length...)."""


class VerifyError(BuildError):
    """A bundle failed verification (NaN / invalid tokens, load failure...)."""


class AdapterError(BuildError):
    """A LoRA adapter folder is missing, malformed, or does not fit the model it is applied to."""


class CatalogError(BuildError):
    """A catalog cannot be built from a manifest, or one read from elsewhere is malformed or matches nothing."""


class ManifestError(BuildError):
    """A folder's manifest.json cannot be read or does not have the manifest's shape."""


class PullError(BuildError):
    """Downloading a bundle failed (unreachable server, HTTP error, dropped connection after the retries)."""


class IntegrityError(PullError):
    """Downloaded bytes do not have the catalog's sha256 (or size); nothing was kept."""


_HINTS = {
    errno.ENOSPC: "the disk is full: free space there or choose another folder",
    errno.EDQUOT: "the disk quota is used up: free space there or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to, or fix its permissions",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that path is a folder, not a file: choose another path",
    errno.EEXIST: "something already exists at that path: choose another path",
    errno.ENOENT: "no such file or folder",
    errno.EIO: "input/output error: the disk may be failing",
    errno.ENAMETOOLONG: "the name is too long for this file system",
    errno.EMFILE: "too many open files: raise `ulimit -n`",
}


def os_error_message(exc: OSError, doing: str = "") -> str:
    """One line for a file-system error: what was being done, on which path, why, and what to do.

    `doing` names the operation and, when the error itself carries no path, the folder it was working in.
    """
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    cause = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1)
    head = " ".join(part for part in (doing, paths) if part)
    return (f"{head}: " if head else "") + cause + (f" ({hint})" if hint and hint != cause.lower() else "")


@contextlib.contextmanager
def file_system_errors(doing: str) -> Iterator[None]:
    """Turn any failure caused by an OSError inside the block (ours, or one a library wrapped) into a BuildError
    line naming `doing`; other exceptions pass unchanged."""
    try:
        yield
    except BuildError:
        raise
    except Exception as exc:
        found = find_os_error(exc)
        if found is None:
            raise
        raise BuildError(os_error_message(found, doing)) from exc


def find_os_error(exc: BaseException) -> OSError | None:
    """The OSError `exc` is or was raised from (libraries wrap them in their own exception types), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
