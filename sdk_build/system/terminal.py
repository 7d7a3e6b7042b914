"""Text from outside (a catalog, a server's error body, a manifest) made safe to print on a terminal.

Why: an escape sequence in a file name or an error message can clear the screen, move the cursor to overwrite
an earlier line ("verified"), or set the window title; a newline can forge a whole line of output; and text
handed to rich is parsed as markup (`[red]`, `[link=...]`). Everything printed that did not originate in this
program goes through `printable` (plain printing) or `markup_safe` (rich), at the place it is printed.
"""

from __future__ import annotations

import unicodedata

_KEEP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with every control or invisible formatting character written as a visible escape (`\\x1b`).

    Tabs stay (our own columns use them); newlines stay only with `keep_newlines`, for multi-line text this
    program composed itself.
    """
    out = []
    for char in str(text):
        if char == "\t" or (keep_newlines and char == "\n"):
            out.append(char)
        elif unicodedata.category(char) in _KEEP_CATEGORIES:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def markup_safe(text: object) -> str:
    """`printable(text)` with rich markup escaped, for `console.print` and progress descriptions."""
    from rich.markup import escape

    return escape(printable(text))
