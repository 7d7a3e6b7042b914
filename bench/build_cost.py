"""Build cost: litert-torch's reference route, once per variant, against `sdk-build matrix` on the same variants.

The reference route is what litert-torch's Gemma 3 README tells a user to do: run
`litert_torch.generative.examples.gemma3.convert_gemma3_to_tflite` with `--quantize=...` for every file, then
mediapipe's bundler. It re-authors and re-exports the whole model for every variant. `sdk-build matrix` exports each
(ekv, prefill set) once in float and quantizes per recipe. Both sides run in this one invocation, on the same
checkpoint and variants, starting from an empty export cache; the script prints wall time and the peak resident
memory of each side's whole process tree, the sizes of the files each side wrote, and the ratio ours / reference.

    python -m bench.build_cost --checkpoint embedded:gemma3-270m --variants dynamic_int8@1024
    python -m bench.build_cost --checkpoint random:gemma3-1b-it            # the whole 1B matrix (long: ~1.5 h)
    python -m bench.build_cost --checkpoint embedded:gemma3-270m --ekv 1024 --jobs 1 2   # ours twice, one reference

`--jobs` takes one or more values: ours is timed once per value (each from its own empty export cache), all against
the one reference pass, which runs its variants one after another as the litert-torch README does.

Reference rows for `int4_qat` and the `_all` recipes use the nearest in-converter option (litert-torch's converter
has no per-channel int4 and always quantizes the embedding too), so their conversion work is the same but their
files differ; the table says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import print_table, ratio, write_results
from bench.process_tree import MeasuredRun, run_measured
from sdk_build.artifacts.naming import bundle_filename
from sdk_build.matrix import DEFAULT_MATRIX, PlannedVariant, load_matrix
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.checkpoint import Checkpoint, default_cache_dir
from sdk_build.spec import BundleFormat, Recipe, Target

GIB = 2**30
MIB = 2**20

REFERENCE_QUANTIZE: dict[Recipe, tuple[str, bool]] = {
    # recipe -> (convert_gemma3_to_tflite --quantize, same file as ours?)
    Recipe.FP32: ("none", True),
    Recipe.DYNAMIC_INT8: ("dynamic_int8", True),
    Recipe.DYNAMIC_INT4_BLOCK32: ("dynamic_int4_block32", False),
    Recipe.DYNAMIC_INT4_BLOCK128: ("dynamic_int4_block128", False),
    Recipe.DYNAMIC_INT4_BLOCK32_ALL: ("dynamic_int4_block32", True),
    Recipe.DYNAMIC_INT4_BLOCK128_ALL: ("dynamic_int4_block128", True),
    Recipe.INT4_QAT: ("dynamic_int4_block128", False),
}
MODEL_SIZE = {"gemma3-270m": "270m", "gemma3-1b": "1b"}


@dataclasses.dataclass
class ReferenceRow:
    label: str
    quantize: str
    same_recipe: bool
    convert: MeasuredRun
    bundle: MeasuredRun
    task_bytes: int

    @property
    def seconds(self) -> float:
        return self.convert.seconds + self.bundle.seconds

    @property
    def peak(self) -> int:
        return max(self.convert.peak_tree_rss_bytes, self.bundle.peak_tree_rss_bytes)

    @property
    def peak_pss(self) -> int:
        return max(self.convert.peak_tree_pss_bytes, self.bundle.peak_tree_pss_bytes)


def variant_label(planned: PlannedVariant) -> str:
    spec = planned.spec
    return spec.output_name or f"{spec.recipe.value}@ekv{spec.ekv}"


def select_variants(planned: list[PlannedVariant], wanted: list[str] | None) -> list[PlannedVariant]:
    """Keep variants named `recipe@ekv` (or their output name) in `wanted`; all when `wanted` is empty."""
    if not wanted:
        return planned
    keep = [p for p in planned if f"{p.spec.recipe.value}@{p.spec.ekv}" in wanted or p.spec.output_name in wanted]
    known = {f"{p.spec.recipe.value}@{p.spec.ekv}" for p in planned} | {p.spec.output_name for p in planned}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; the matrix has: {', '.join(sorted(k for k in known if k))}")
    return keep


def matrix_toml(checkpoint_ref: str, variants: list[PlannedVariant]) -> str:
    """A matrix file holding exactly `variants`, so `sdk-build matrix` builds what the reference route builds."""
    lines = [f"checkpoint = {checkpoint_ref!r}".replace("'", '"'), ""]
    by_target: dict[Target, list[PlannedVariant]] = {}
    for planned in variants:
        by_target.setdefault(planned.spec.target, []).append(planned)
    for target, members in by_target.items():
        lines += [f"[targets.{target.value}]", "variants = ["]
        for planned in members:
            spec = planned.spec
            fields = [
                f'recipe = "{spec.recipe.value}"',
                f"ekv = {spec.ekv}",
                f"prefill_lengths = [{', '.join(str(n) for n in spec.prefill_lengths)}]",
            ]
            if spec.output_name:
                fields.append(f'output_name = "{spec.output_name}"')
            lines.append("  { " + ", ".join(fields) + " },")
        lines += ["]", ""]
    return "\n".join(lines)


def export_only_cache(shared: Path, fresh: Path) -> Path:
    """A cache with the shared checkpoints (materialising weights is not a build cost) and no float exports."""
    fresh.mkdir(parents=True, exist_ok=True)
    (fresh / "checkpoints").symlink_to((shared / "checkpoints").resolve(), target_is_directory=True)
    return fresh


def failure_summary(message: str) -> str:
    """The first line of a failed command's report plus its last output line; exit -9 is named for what it usually is."""
    lines = [line for line in message.splitlines() if line.strip()]
    head = lines[0] if lines else message
    hint = " (killed by signal 9: out of memory?)" if " exited -9" in head else ""
    return f"{head[-200:]}{hint}: {lines[-1][-300:] if len(lines) > 1 else ''}"


def run_reference(checkpoint: Checkpoint, planned: PlannedVariant, work: Path) -> ReferenceRow:
    spec = planned.spec
    quantize, same = REFERENCE_QUANTIZE[spec.recipe]
    label = variant_label(planned)
    out = work / "reference" / label
    out.mkdir(parents=True, exist_ok=True)
    # random: checkpoints have no weight files; litert-torch then initialises the exact shape randomly itself.
    checkpoint_path = "" if checkpoint.random_seed is not None else str(checkpoint.directory)
    convert = run_measured(
        [
            sys.executable,
            "-m",
            "litert_torch.generative.examples.gemma3.convert_gemma3_to_tflite",
            f"--model_size={MODEL_SIZE[checkpoint.model]}",
            f"--checkpoint_path={checkpoint_path}",
            f"--output_path={out}",
            f"--output_name_prefix={label}",
            f"--quantize={quantize}",
            f"--kv_cache_max_len={spec.ekv}",
            *[f"--prefill_seq_lens={n}" for n in spec.prefill_lengths],
        ],
        log=out / "convert.log",
    ).check()
    tflite = next(out.glob("*.tflite"))
    task = out / f"{label}.task"
    bundle = run_measured(
        [
            sys.executable,
            "-m",
            "bench.build_cost",
            "_bundle",
            str(tflite),
            str(checkpoint.tokenizer_path),
            str(task),
            "--it" if checkpoint.instruction_tuned else "--base",
        ],
        log=out / "bundle.log",
    ).check()
    row = ReferenceRow(label, quantize, same, convert, bundle, task.stat().st_size)
    tflite.unlink()  # keep the disk footprint to one variant's files: a 1B matrix would otherwise need ~25 GB
    task.unlink()
    return row


def run_ours(
    checkpoint_ref: str, variants: list[PlannedVariant], work: Path, cache: Path, jobs: int
) -> tuple[MeasuredRun, list]:
    import json

    matrix_file = work / "matrix.toml"
    matrix_file.write_text(matrix_toml(checkpoint_ref, variants))
    out = work / f"ours-jobs{jobs}"
    table = out / "matrix.json"
    run = run_measured(
        [
            sys.executable,
            "-m",
            "sdk_build",
            "matrix",
            "--matrix",
            str(matrix_file),
            "--output",
            str(out),
            "--cache-dir",
            str(cache),
            "--jobs",
            str(jobs),
            "--report",
            str(table),
        ],
        log=work / f"ours-jobs{jobs}.log",
    ).check()
    rows = json.loads(table.read_text())
    shutil.rmtree(out, ignore_errors=True)  # a 1B matrix is ~13 GB; the next run and the reference need the disk
    shutil.rmtree(cache / "exports", ignore_errors=True)
    return run, rows


def bundle_main(argv: list[str]) -> int:
    """`python -m bench.build_cost _bundle TFLITE TOKENIZER OUT --it|--base`: mediapipe's bundler, as a child."""
    from sdk_build.convert.bundle import prompt_template, write_task

    tflite, tokenizer, out, kind = argv
    write_task(Path(tflite), Path(tokenizer), prompt_template(kind == "--it"), Path(out))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.build_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="random:gemma3-1b-it")
    parser.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX)
    parser.add_argument("--target", "--targets", dest="targets", action="extend", nargs="+", choices=[t.value for t in Target],
                        help="only these targets (repeatable)")
    parser.add_argument("--variants", nargs="+", help="recipe@ekv or output names (default: every variant)")
    parser.add_argument("--ekv", type=int, help="override every variant's ekv (e.g. 1024 for the 270M)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where checkpoints are cached")
    parser.add_argument("--skip-reference", action="store_true", help="time only ours (no ratio)")
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1], help="time ours once per value of `sdk-build matrix --jobs`"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_bundle"]:
        return bundle_main(argv[1:])
    args = parse_args(argv)
    shared_cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    checkpoint = resolve_checkpoint(args.checkpoint, shared_cache)
    if checkpoint.model not in MODEL_SIZE:
        raise SystemExit(f"the reference route only converts Gemma 3 270M and 1B, not {checkpoint.model}")
    matrix = load_matrix(args.matrix)
    planned = select_variants(
        matrix.plan(tuple(Target(t) for t in args.targets) if args.targets else None), args.variants
    )
    if args.ekv:  # a smaller model's cache: prefill signatures longer than it are dropped, as the spec requires
        planned = [
            dataclasses.replace(
                p,
                spec=dataclasses.replace(
                    p.spec, ekv=args.ekv, prefill_lengths=tuple(n for n in p.spec.prefill_lengths if n <= args.ekv)
                ),
            )
            for p in planned
        ]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="build-cost-", dir=shared_cache))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return report(args, checkpoint, planned, work, shared_cache)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace, checkpoint: Checkpoint, planned: list[PlannedVariant], work: Path, shared_cache: Path
) -> int:
    print(f"build cost: {len(planned)} variants of {args.checkpoint}; scratch {work}", flush=True)
    ours_runs: list[tuple[int, MeasuredRun, list]] = []
    for jobs in args.jobs:
        cache = export_only_cache(shared_cache, work / f"cache-jobs{jobs}")
        ours, table = run_ours(args.checkpoint, planned, work, cache, jobs)
        ours_runs.append((jobs, ours, table))
        print(
            f"ours (sdk-build matrix --jobs {jobs}): {ours.seconds:.0f} s, peak {ours.peak_tree_rss_bytes / GIB:.1f} GiB "
            f"(PSS {ours.peak_tree_pss_bytes / GIB:.1f} GiB)",
            flush=True,
        )
    _, ours, table = ours_runs[0]
    # The matrix builds in export-group order, not in plan order: pair its rows with variants by file name.
    by_file = {row["file"]: row for row in table}
    ours_rows = {variant_label(p): by_file[bundle_filename(checkpoint, p.spec, BundleFormat.TASK)] for p in planned}
    ours_bytes = {label: row["bytes"] for label, row in ours_rows.items()}
    references: list[ReferenceRow] = []
    reference_failures: dict[str, str] = {}
    if not args.skip_reference:
        for index, variant in enumerate(planned, 1):
            print(f"reference {index}/{len(planned)}: {variant_label(variant)}", flush=True)
            try:
                references.append(run_reference(checkpoint, variant, work))
            except RuntimeError as exc:  # one failed conversion (e.g. killed for memory) must not lose the others
                reference_failures[variant_label(variant)] = failure_summary(str(exc))
                print(f"  FAILED: {reference_failures[variant_label(variant)]}", flush=True)
                shutil.rmtree(work / "reference" / variant_label(variant), ignore_errors=True)
                continue
            row = references[-1]
            print(
                f"  {row.seconds:.0f} s, peak {row.peak / GIB:.1f} GiB (PSS {row.peak_pss / GIB:.1f}), "
                f"{row.task_bytes / MIB:.1f} MiB",
                flush=True,
            )
    rows = []
    for variant in planned:
        ours_row = ours_rows[variant_label(variant)]
        ref = next((r for r in references if r.label == variant_label(variant)), None)
        rows.append(
            [
                variant_label(variant),
                ref.quantize + ("" if ref.same_recipe else " (nearest)") if ref else None,
                ref.seconds if ref else None,
                ref.peak / GIB if ref else None,
                ref.task_bytes / MIB if ref else None,
                ours_row["seconds"],
                ours_row["bytes"] / MIB,
            ]
        )
    print_table(
        f"Build cost per variant ({args.checkpoint})",
        [
            "variant",
            "reference --quantize",
            "ref s",
            "ref peak GiB",
            "ref MiB",
            f"ours s (jobs {ours_runs[0][0]})",
            "ours MiB",
        ],
        rows,
    )
    # A ratio over part of the variants would flatter one side: without every reference row there is none.
    reference_seconds = 0.0 if reference_failures else sum(r.seconds for r in references)
    reference_peak = max((r.peak for r in references), default=0)
    summary: dict[str, Any] = {
        "checkpoint": args.checkpoint,
        "variants": [variant_label(p) for p in planned],
        "jobs": ours_runs[0][0],
        "ours_seconds": ours.seconds,
        "ours_peak_tree_rss_bytes": ours.peak_tree_rss_bytes,
        "ours_peak_tree_pss_bytes": ours.peak_tree_pss_bytes,
        "reference_seconds": reference_seconds or None,
        "reference_peak_tree_rss_bytes": reference_peak or None,
        "time_ratio_ours_over_reference": ratio(ours.seconds, reference_seconds),
        "ours_per_variant": table,
        "ours_runs": [
            {
                "jobs": jobs,
                "seconds": run.seconds,
                "peak_tree_rss_bytes": run.peak_tree_rss_bytes,
                "peak_tree_pss_bytes": run.peak_tree_pss_bytes,
                "time_ratio_ours_over_reference": ratio(run.seconds, reference_seconds),
                "per_variant": rows,
            }
            for jobs, run, rows in ours_runs
        ],
        "load_average_after": os.getloadavg(),
        "reference_failures": reference_failures,
        "reference_per_variant": [
            {
                "variant": r.label,
                "quantize": r.quantize,
                "same_recipe": r.same_recipe,
                "seconds": r.seconds,
                "convert_seconds": r.convert.seconds,
                "bundle_seconds": r.bundle.seconds,
                "peak_tree_rss_bytes": r.peak,
                "peak_tree_pss_bytes": r.peak_pss,
                "task_bytes": r.task_bytes,
                "ours_task_bytes": ours_bytes.get(r.label),
            }
            for r in references
        ],
    }
    print_table(
        "Totals",
        ["route", "seconds", "peak GiB", "ratio ours/reference"],
        [
            [
                "reference (convert_gemma3_to_tflite + bundler, per variant)",
                reference_seconds or None,
                reference_peak / GIB or None,
                None,
            ],
            *(
                [
                    f"ours (sdk-build matrix --jobs {jobs})",
                    run.seconds,
                    run.peak_tree_rss_bytes / GIB,
                    ratio(run.seconds, reference_seconds),
                ]
                for jobs, run, _ in ours_runs
            ),
        ],
    )
    for label, failure in reference_failures.items():
        print(f"reference {label} failed, so no ratio: {failure}")
    name = f"build_cost_{MODEL_SIZE[checkpoint.model]}"
    print(f"wrote {write_results(name, summary)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
