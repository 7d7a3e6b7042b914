"""`sdk-build`: one thin module per command (`sdk_build/cli/<command>.py`: its arguments and a `run` that calls the
plain function doing the work), assembled here; errors become one line and exit code 2.

The shape is MLC-LLM's `cli/` over `interface/`: nothing here builds, verifies or downloads anything itself.
`gemma-edge` (the package `gemma_edge`) is the one entry point over this and the server, lab and phone commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sdk_build.cli import build, catalog, plan, pull, tiny, verify
from sdk_build.cli.errors import print_error
from sdk_build.errors import BuildError, find_os_error, os_error_message

COMMANDS = (build, verify, plan, catalog, pull, tiny)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("gemma-edge")
    except PackageNotFoundError:  # a checkout run without installing it
        return "unknown (not installed)"


def build_parser(prog: str = "sdk-build") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Build Gemma 3 on-device bundles.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "sdk-build") -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.handler(args))
    except BuildError as exc:
        print_error(str(exc), exc.details)
        return 2
    except KeyboardInterrupt:
        print("sdk-build: interrupted; no partial bundle was left under a final name", file=sys.stderr)
        return 130
    except Exception as exc:  # a file-system failure from anywhere (ours, a converter's): one line, not a traceback
        found = find_os_error(exc)
        if found is None:
            raise
        print_error(os_error_message(found))
        return 2




if __name__ == "__main__":
    sys.exit(main())
