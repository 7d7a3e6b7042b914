"""How a failure reaches the terminal: one line (text from outside made harmless), then any details."""

from __future__ import annotations

import sys

from sdk_build.system.terminal import printable


def print_error(message: str, details: str = "") -> None:
    """The one line a failure prints (text from outside made harmless: sdk_build.system.terminal), then any details."""
    print(f"sdk-build: error: {printable(message)}", file=sys.stderr)
    for line in details.splitlines():
        print(f"  {printable(line)}", file=sys.stderr)


