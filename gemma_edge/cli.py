"""`gemma-edge COMMAND ...`: build, matrix, build-defaults, verify, catalog, pull, make-tiny, serve, lab, android.

Like MLC-LLM's `__main__.py`, the first word picks a command and the rest of the line goes to that command's own
parser, imported only then (a `gemma-edge pull` does not import the lab or the server).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sdk_build.cli.help import COMMAND_HELP

PROG = "gemma-edge"


@dataclass(frozen=True)
class Command:
    module: str
    help: str
    sdk_build: bool = False
    """An `sdk-build` subcommand (its parser is sdk_build.cli's); else a package's own `main(argv, prog)`."""


COMMANDS: dict[str, Command] = {
    **{name: Command("sdk_build.cli", text, True) for name, text in COMMAND_HELP.items()},
    "serve": Command("web_demo.__main__", "serve the demo page, the bundles and the API (waitress)"),
    "lab": Command("device_tests.lab", "benchmark bundles on host, gpu, web or android and judge the results"),
    "android": Command("android_bridge.cli", "phones over adb: devices, facts, push, bench"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} [-h] [--version] COMMAND ...", "",
             "Gemma 3 on-device bundles: build, verify, distribute, serve, benchmark.", "", "commands:"]
    lines += [f"  {name:{width}}  {command.help}" for name, command in COMMANDS.items()]
    lines += ["", f"`{PROG} COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def entry(name: str) -> Callable[[list[str]], int]:
    """The function that runs command `name` on the rest of the command line."""
    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    if command.sdk_build:
        return lambda rest: int(module.main([name, *rest], prog=PROG))
    return lambda rest: int(module.main(rest, prog=f"{PROG} {name}"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        from sdk_build.cli import version

        print(f"{PROG} {version()}")
        return 0
    if args[0] not in COMMANDS:
        print(usage(), file=sys.stderr)
        print(f"\n{PROG}: error: unknown command {args[0]!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return entry(args[0])(args[1:])


if __name__ == "__main__":
    sys.exit(main())
