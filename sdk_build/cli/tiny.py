"""`sdk-build make-tiny`: a tiny Gemma-3-shaped checkpoint for smoke tests (`sdk_build.sources.tiny_checkpoint`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sdk_build.cli.help import COMMAND_HELP


def register(commands: argparse._SubParsersAction) -> None:
    tiny = commands.add_parser("make-tiny", help=COMMAND_HELP["make-tiny"])
    tiny.add_argument("directory", type=Path, help="folder to write the tiny checkpoint into")
    tiny.add_argument("--seed", type=int, default=0, help="random seed of its weights (default 0)")
    tiny.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    print(make_tiny_checkpoint(args.directory, seed=args.seed))
    return 0


