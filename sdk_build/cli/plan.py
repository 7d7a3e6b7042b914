"""`sdk-build matrix` and `sdk-build build-defaults`: build every variant of a plan (`sdk_build.matrix`).

One command family over one plan format: `build-defaults` is `matrix --matrix demo` (the main job's set), and both
take the same options (targets, jobs, LoRA, KV cache, verify).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sdk_build.cli import options
from sdk_build.cli.help import COMMAND_HELP


def _add_plan_arguments(parser: argparse.ArgumentParser, default_plan: str, *plan_aliases: str) -> None:
    from sdk_build.matrix import shipped_plans
    from sdk_build.spec import Target

    parser.add_argument("--matrix", *plan_aliases, dest="matrix", default=default_plan, metavar="PLAN",
                        help=f"plan file, or a shipped plan: {', '.join(shipped_plans())} (default {default_plan})"
                        + (f"; {', '.join(plan_aliases)}: its older name" if plan_aliases else ""))
    parser.add_argument("--target", "--targets", dest="targets", action="extend", nargs="+",
                        choices=[t.value for t in Target], metavar="TARGET",
                        help="only these targets (repeatable; one of " + ", ".join(t.value for t in Target) + ")")
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="overrides the plan's checkpoint; repeat for several (one output subfolder each)")
    parser.add_argument("--checkpoints-file", type=options.existing_path, default=None,
                        help="a file of checkpoint references, one a line (# comments), built like repeated --checkpoint")
    parser.add_argument("--executor", type=options.executor, default="local",
                        help="local (default: this machine, --jobs exports at once), ray (the Ray cluster running "
                        "here, else a new one on this machine) or ray://HEAD:PORT (a Ray cluster's client port); "
                        "see docs/ray.md")
    options.add_output_folder(parser)
    parser.add_argument("--jobs", type=options.positive_int, default=1,
                        help="float exports to run at once (memory permitting; default 1)")
    options.add_allow_custom_shape(parser)
    parser.add_argument("--verify", action="store_true",
                        help="verify each .task after building (LiteRT-LM CPU against the fp32 reference)")
    parser.add_argument("--json", action="store_true", help="print the per-variant table as JSON instead of text")
    parser.add_argument("--report", type=Path, default=None, metavar="PATH",
                        help="also write the per-variant table as JSON here")
    options.add_kv_cache(parser)
    options.add_lora(parser)
    options.add_cache_dir(parser)
    parser.set_defaults(handler=run)


def register(commands: argparse._SubParsersAction) -> None:
    matrix = commands.add_parser("matrix", help=COMMAND_HELP["matrix"])
    _add_plan_arguments(matrix, "gemma3_1b")
    defaults = commands.add_parser("build-defaults", help=COMMAND_HELP["build-defaults"])
    _add_plan_arguments(defaults, "demo", "--file")


def _verify(path: Path, cache_dir: Path | None) -> dict[str, Any]:
    from sdk_build.verify import verify_bundle

    report = verify_bundle(path, cache_dir=cache_dir)
    return {"passed": report.passed, "top1_agreement": report.top1_agreement, "problems": list(report.problems),
            "prompt": report.results[0].prompt, "bundle_text": report.results[0].bundle_text}


def run(args: argparse.Namespace) -> int:
    from sdk_build.executors import run_jobs
    from sdk_build.matrix import load_matrix, plan_job
    from sdk_build.matrix_checkpoints import checkpoint_list, output_folders
    from sdk_build.spec import Target

    matrix = load_matrix(args.matrix)
    refs = checkpoint_list(args.checkpoint, args.checkpoints_file, matrix.checkpoint)
    folders = output_folders(refs, args.output)
    lora = options.lora_spec(args)
    only = tuple(Target(t) for t in args.targets) if args.targets else None
    jobs = [plan_job(ref, matrix, folder, cache_dir=args.cache_dir, only=only,
                     allow_custom_shape=args.allow_custom_shape, lora=lora,
                     window_kv_cache=options.window_kv_cache(args))
            for ref, folder in zip(refs, folders, strict=True)]
    outcomes = run_jobs(jobs, jobs=args.jobs, executor=args.executor)
    text = not args.json
    rows = []
    if text:
        print(f"{'file':62} {'MiB':>9} {'published':>9} {'diff':>7} {'seconds':>8} {'peak GB':>8}  targets")
    for outcome in outcomes:
        folder = "" if len(refs) == 1 or outcome.output_dir is None else f"{outcome.output_dir.name}/"
        here = outcome.output_dir or args.output
        for file, size in zip(outcome.files, outcome.bytes) or [("(failed)", 0)]:
            difference = matrix.size_difference(file, size)
            row = {"file": file, "bytes": size, "published_mib": matrix.published_mib.get(file),
                   "size_difference": difference, "seconds": round(outcome.seconds, 1),
                   "peak_rss_bytes": outcome.peak_rss_bytes, "skipped": outcome.skipped,
                   "targets": [t.value for t in outcome.planned.targets], "error": outcome.error,
                   **({"folder": str(outcome.output_dir)} if folder else {}),
                   **({"node": outcome.node, "node_id": outcome.node_id} if outcome.node else {}),
                   **({"export_node_id": outcome.export_node_id} if outcome.export_node_id else {})}
            rows.append(row)
            if text:
                published = (f"{matrix.published_mib[file]:9.0f} {difference:+7.2%}" if difference is not None
                             else f"{'-':>9} {'-':>7}")
                print(f"{folder + file:62} {size / 2**20:9.1f} {published} {outcome.seconds:8.1f} "
                      f"{outcome.peak_rss_bytes / 1e9:8.1f}  {','.join(row['targets'])}"
                      f"{'  (up to date)' if outcome.skipped else ''}")
            if args.verify and not outcome.error and file.endswith(".task"):
                row["verify"] = _verify(here / file, args.cache_dir)
                if text:
                    check = row["verify"]
                    print(f"  verify: {check['prompt']!r} -> {check['bundle_text']!r}; top-1 agreement "
                          f"{check['top1_agreement']:.1%}" + ("" if check["passed"] else f"; FAIL: {check['problems']}"))
        if outcome.error and text:
            print(f"  FAILED: {outcome.error}")
    if text:
        print(f"total {sum(o.seconds for o in outcomes):.1f} s over {len(outcomes)} variants")
    else:
        print(json.dumps(rows, indent=2))
    if args.report:
        from sdk_build.system.atomic import atomic_write_json

        atomic_write_json(args.report, rows)
    failed_checks = any(not row.get("verify", {"passed": True})["passed"] for row in rows)
    return 1 if any(o.error for o in outcomes) or failed_checks else 0
