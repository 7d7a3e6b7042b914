"""`sdk-build`: a thin argument parser over the stage functions; errors become one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sdk_build.errors import BuildError
from sdk_build.sources.resolve import DEFAULT_CHECKPOINT


def _existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return number


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache for checkpoints and float exports "
                        "(default $GEMMA_EDGE_CACHE or ~/.cache/gemma-edge)")


def build_parser() -> argparse.ArgumentParser:
    from sdk_build.spec import BundleFormat, Recipe, Target

    parser = argparse.ArgumentParser(prog="sdk-build", description="Build Gemma 3 on-device bundles.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build one variant (.task and/or .litertlm) into an output folder")
    build.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help="embedded:gemma3-270m (default), a local HF folder, hf:ORG/NAME[@REV], random:gemma3-1b")
    build.add_argument("--recipe", required=True, help="one of: " + ", ".join(r.value for r in Recipe))
    build.add_argument("--ekv", type=_positive_int, required=True, help="KV cache size in tokens")
    build.add_argument("--prefill", type=_positive_int, action="append",
                       help="prefill signature length (repeatable; default 32 128 512 1280)")
    build.add_argument("--format", action="append", choices=[f.value for f in BundleFormat],
                       help="bundle format (repeatable; default task)")
    build.add_argument("--target", default=Target.ANDROID_CPU.value, choices=[t.value for t in Target])
    build.add_argument("--output", type=Path, default=Path("bundles"), help="output folder (default bundles/)")
    build.add_argument("--name", help="output file stem (default: seed 001's naming scheme)")
    build.add_argument("--force", action="store_true", help="rebuild even if an identical bundle exists")
    build.add_argument("--allow-custom-shape", action="store_true",
                       help="accept Gemma-3-shaped models other than 270M/1B (tiny test models)")
    _add_common(build)

    verify = commands.add_parser("verify", help="run a bundle with LiteRT-LM and compare with the fp32 reference")
    verify.add_argument("bundle", type=_existing_path)
    verify.add_argument("--checkpoint", help="checkpoint the bundle came from (default: from manifest.json)")
    verify.add_argument("--tokens", type=_positive_int, default=16, help="greedy tokens per prompt (default 16)")
    verify.add_argument("--prompt", action="append", help="prompt (repeatable; default: four fixed prompts)")
    verify.add_argument("--threads", type=_positive_int, default=2)
    verify.add_argument("--min-agreement", type=float, default=None, help="fail below this top-1 agreement (0-1)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_common(verify)

    defaults = commands.add_parser("build-defaults", help="build the default bundle set (sdk_build/defaults.toml)")
    defaults.add_argument("--file", type=_existing_path, default=None, help="a bundle-set TOML (default: built-in)")
    defaults.add_argument("--output", type=Path, default=Path("bundles"))
    defaults.add_argument("--verify", action="store_true", help="verify each .task after building")
    _add_common(defaults)

    matrix = commands.add_parser("matrix", help="build every variant of a target matrix (TOML)")
    matrix.add_argument("--matrix", type=_existing_path, default=None, help="matrix file (default: Gemma 3 1B set)")
    matrix.add_argument("--targets", nargs="+", choices=[t.value for t in Target], help="only these targets")
    matrix.add_argument("--checkpoint", default=None, help="overrides the matrix file's checkpoint")
    matrix.add_argument("--output", type=Path, default=Path("bundles"))
    matrix.add_argument("--jobs", type=_positive_int, default=1, help="float exports to run at once (memory permitting)")
    matrix.add_argument("--allow-custom-shape", action="store_true")
    matrix.add_argument("--json", type=Path, default=None, help="also write the per-variant table as JSON here")
    _add_common(matrix)

    tiny = commands.add_parser("make-tiny", help="write a tiny Gemma-3-shaped checkpoint (for smoke tests)")
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    return parser


def run_build(args: argparse.Namespace) -> int:
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    variant = make_variant(
        args.recipe, args.ekv, args.prefill, formats=args.format or ["task"], target=args.target, output_name=args.name
    )
    outcome = build(
        args.checkpoint, variant, args.output, cache_dir=args.cache_dir, allow_custom_shape=args.allow_custom_shape,
        force=args.force,
    )
    for entry in outcome.entries:
        print(f"{args.output / entry.file}\t{entry.bytes}\t{entry.sha256}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from sdk_build.verify import DEFAULT_PROMPTS, verify_bundle

    report = verify_bundle(
        args.bundle, args.checkpoint, cache_dir=args.cache_dir, new_tokens=args.tokens,
        prompts=tuple(args.prompt) if args.prompt else DEFAULT_PROMPTS, threads=args.threads,
        min_agreement=args.min_agreement,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for result in report.results:
            print(f"prompt:    {result.prompt!r}")
            print(f"  bundle:    {result.bundle_text!r}")
            print(f"  reference: {result.reference_text!r}")
            print(f"  teacher-forced top-1 {result.forced_matches}/{result.forced_positions}; free-running "
                  + (f"diverges at token {result.first_divergence}" if result.first_divergence is not None else "identical"))
        print(f"{report.bundle}: top-1 agreement {report.top1_agreement:.1%} (teacher-forced, "
              f"{sum(r.forced_positions for r in report.results)} positions over {len(report.results)} prompts); "
              f"free-running {report.free_running_agreement:.1%}")
        for problem in report.problems:
            print(f"FAIL: {problem}")
    return 0 if report.passed else 1


def run_build_defaults(args: argparse.Namespace) -> int:
    from sdk_build.bundle_set import load_bundle_set
    from sdk_build.pipeline import build
    from sdk_build.verify import verify_bundle

    checkpoint, variants = load_bundle_set(args.file)
    failures = 0
    for variant in variants:
        outcome = build(checkpoint, variant, args.output, cache_dir=args.cache_dir)
        for entry in outcome.entries:
            print(f"{args.output / entry.file}\t{entry.bytes}\t{entry.sha256}")
            if args.verify and entry.format == "task":
                report = verify_bundle(args.output / entry.file, cache_dir=args.cache_dir)
                first = report.results[0]
                print(f"  verify: {first.prompt!r} -> {first.bundle_text!r}; top-1 agreement "
                      f"{report.top1_agreement:.1%}" + ("" if report.passed else f"; FAIL: {report.problems}"))
                failures += not report.passed
    return 1 if failures else 0


def run_matrix(args: argparse.Namespace) -> int:
    from sdk_build.matrix import load_matrix, run_matrix as build_matrix
    from sdk_build.spec import Target

    matrix = load_matrix(args.matrix)
    outcomes = build_matrix(
        args.checkpoint or matrix.checkpoint, matrix, args.output, jobs=args.jobs, cache_dir=args.cache_dir,
        only=tuple(Target(t) for t in args.targets) if args.targets else None,
        allow_custom_shape=args.allow_custom_shape,
    )
    rows = []
    print(f"{'file':62} {'MiB':>9} {'seconds':>8} {'peak GB':>8}  targets")
    for outcome in outcomes:
        for file, size in zip(outcome.files, outcome.bytes) or [("(failed)", 0)]:
            print(f"{file:62} {size / 2**20:9.1f} {outcome.seconds:8.1f} {outcome.peak_rss_bytes / 1e9:8.1f}  "
                  f"{','.join(t.value for t in outcome.planned.targets)}{'  (up to date)' if outcome.skipped else ''}")
            rows.append({"file": file, "bytes": size, "seconds": round(outcome.seconds, 1),
                         "peak_rss_bytes": outcome.peak_rss_bytes, "skipped": outcome.skipped,
                         "targets": [t.value for t in outcome.planned.targets], "error": outcome.error})
        if outcome.error:
            print(f"  FAILED: {outcome.error}")
    print(f"total {sum(o.seconds for o in outcomes):.1f} s over {len(outcomes)} variants")
    if args.json:
        from sdk_build.atomic import atomic_write_json

        atomic_write_json(args.json, rows)
    return 1 if any(o.error for o in outcomes) else 0


def run_make_tiny(args: argparse.Namespace) -> int:
    from sdk_build.tiny_checkpoint import make_tiny_checkpoint

    print(make_tiny_checkpoint(args.directory, seed=args.seed))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    handlers = {
        "build": run_build, "verify": run_verify, "build-defaults": run_build_defaults, "matrix": run_matrix,
        "make-tiny": run_make_tiny,
    }
    try:
        return handlers[args.command](args)
    except BuildError as exc:
        print(f"sdk-build: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdk-build: interrupted; no partial bundle was left under a final name", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
