"""Progress display shared by every stage (rich), quiet when output is not a terminal or in tests."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console

T = TypeVar("T")
console = Console(stderr=True)


def _quiet() -> bool:
    return os.environ.get("GEMMA_EDGE_QUIET") == "1"


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with elapsed time for a stage that has no natural steps (export, quantize)."""
    start = time.monotonic()
    if _quiet():
        yield
        return
    if console.is_terminal:
        with console.status(f"[bold]{message}[/]"):
            yield
    else:
        print(f"... {message}", file=sys.stderr, flush=True)
        yield
    console.print(f"[green]done[/] {message} ({time.monotonic() - start:.1f} s)")


def track(items: Iterable[T], description: str) -> Iterable[T]:
    if _quiet():
        return items
    from rich.progress import track as rich_track

    return rich_track(items, description=description, console=console, transient=True)
