"""`sdk-build catalog`: write catalog.json, what apps read to pick and verify bundles (`sdk_build.artifacts.catalog`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdk_build.cli import options
from sdk_build.cli.help import COMMAND_HELP
from sdk_build.system.terminal import printable


def register(commands: argparse._SubParsersAction) -> None:
    catalog = commands.add_parser("catalog", help=COMMAND_HELP["catalog"])
    catalog.add_argument("--bundles", type=options.existing_path, default=Path("bundles"),
                         help="folder of bundles and their manifest.json (default bundles/)")
    catalog.add_argument("--output", default=None, metavar="PATH",
                         help="write the catalog here instead of BUNDLES/catalog.json ('-': print it, as --json)")
    catalog.add_argument("--json", action="store_true", help="print the catalog as JSON instead of writing it")
    catalog.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sdk_build.artifacts.catalog import build_catalog, write_catalog
    from sdk_build.artifacts.manifest import load_manifest

    if args.json or args.output == "-":
        print(json.dumps(build_catalog(load_manifest(args.bundles).bundles), indent=2))
        return 0
    path, catalog = write_catalog(args.bundles, Path(args.output) if args.output else None)
    print(f"{'file':62} {'MiB':>8} {'runtime MiB':>11} {'min device':>10}  targets")
    for bundle in catalog["bundles"]:  # the manifest's words: printed harmless
        memory = bundle["memory"]
        print(printable(f"{bundle['file']:62} {bundle['bytes'] / 2**20:8.1f} "
                        f"{memory['estimated_runtime_bytes'] / 2**20:11.1f} "
                        f"{memory['min_device_memory_bytes'] / 2**30:7.0f} GiB  {','.join(bundle['targets'])}"))
    print(printable(f"wrote {path} ({len(catalog['bundles'])} bundles)"))
    return 0


