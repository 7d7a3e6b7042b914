"""The one rule for names that come from outside and become file names: a plain file name inside its folder.

Why one rule: a bundle's file name reaches the disk from several places (`--name`, a matrix file's
`output_name`, a LoRA adapter's folder name, `manifest.json`, a remote catalog), and the server, the builder
and the pull client must agree on what is safe. A plain name has no folder part (so it cannot leave the output
folder), is not hidden (hidden names are this toolkit's temporary files), and has no control or invisible
formatting characters (which would rewrite a terminal line or disguise one name as another when printed).
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255
"""The longest file name Linux, macOS and Windows file systems accept (in UTF-8 bytes on Linux)."""

_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
"""Control, invisible format (bidi overrides, zero-width), surrogate, private-use, unassigned, line/paragraph
separators: characters that change how a name looks, or whether it looks like a name at all."""


def plain_name_problem(name: object) -> str | None:
    """Why `name` is not a plain file name, or None when it is one."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name in {".", ".."} or name.startswith("."):
        return "starts with '.' (a folder reference or a hidden file)"
    if any(sep in name for sep in ("/", "\\")):
        return "has a folder separator"
    bad = next((c for c in name if unicodedata.category(c) in _FORBIDDEN_CATEGORIES), None)
    if bad is not None:
        return f"holds the control or invisible character U+{ord(bad):04X}"
    if name != name.strip():
        return "starts or ends with white space"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def is_plain_file_name(name: object) -> bool:
    """True for a name that may be written as a file directly inside a folder (see the module docstring)."""
    return plain_name_problem(name) is None
