"""`sdk-build pull`: download bundles from a catalog, resumable and sha256-verified (`sdk_build.distribute.pull`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdk_build.cli import options
from sdk_build.cli.errors import print_error
from sdk_build.cli.help import COMMAND_HELP
from sdk_build.system.terminal import printable


def register(commands: argparse._SubParsersAction) -> None:
    from sdk_build.spec import BundleFormat, Target

    pull = commands.add_parser("pull", help=COMMAND_HELP["pull"])
    pull.add_argument("--from", dest="source", required=True,
                      help="http(s)://host:port (a gemma-edge server), a catalog.json URL or file, a folder, "
                      "or hf:ORG/NAME[@REV]")
    pull.add_argument("--output", "--dest", dest="output", type=Path, required=True,
                      help="folder to download into (--dest: its older name)")
    pull.add_argument("--target", choices=[t.value for t in Target], help="only bundles for this target")
    pull.add_argument("--recipe", "--quantization", dest="recipe", metavar="RECIPE",  # free text: a newer catalog may list newer recipes
                      help="only this recipe, e.g. dynamic_int8, dynamic_int4_block32 (--quantization: its older name)")
    pull.add_argument("--ekv", type=options.positive_int, help="only this KV cache size")
    pull.add_argument("--format", choices=[f.value for f in BundleFormat], help="only this bundle format")
    pull.add_argument("--model", help="only this model, e.g. gemma3-1b")
    pull.add_argument("--file", help="only the bundle with this file name")
    pull.add_argument("--list", action="store_true", help="print the selection and download nothing")
    pull.add_argument("--retries", type=int, default=3, help="resume a dropped transfer this many times (default 3)")
    pull.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    options.add_cache_dir(pull)
    pull.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sdk_build.artifacts.catalog import Selection
    from sdk_build.distribute.pull import plan, pull

    selection = Selection(target=args.target, quantization=args.recipe, ekv=args.ekv, format=args.format,
                          model=args.model, file=args.file)
    if args.list:
        catalog, chosen = plan(args.source, selection, timeout=args.timeout, cache_dir=args.cache_dir)
        print(f"catalog: {printable(catalog.location)}")
        for bundle in chosen:  # every field is the catalog's: printed harmless
            print(printable(f"{bundle.file}\t{bundle.bytes}\t{bundle.sha256}\t{','.join(bundle.targets)}"))
        return 0
    try:
        report = pull(args.source, args.output, selection, retries=args.retries, timeout=args.timeout,
                      cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        print("sdk-build: interrupted; the partial download is kept (.NAME.partial): run the same pull to resume",
              file=sys.stderr)
        return 130
    for result in report.results:
        rate = result.transferred / 1e6 / result.seconds if result.transferred and result.seconds else 0.0
        print(printable(f"{result.path}\t{result.status}\t{result.transferred} bytes transferred\t{result.seconds:.1f} s")
              + (f"\t{rate:.1f} MB/s" if rate else "") + ("\t(replaced a corrupt copy)" if result.replaced_bad_file else ""))
    for name, message in report.failures:
        print_error(message)
    print(printable(f"{len(report.results)} of {len(report.selected)} bundles in {args.output}, "
                    f"{report.transferred} bytes transferred (catalog: {report.catalog})"))
    return 1 if report.failures else 0


