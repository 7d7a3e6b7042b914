"""What a LoRA adapter costs at run time: decode (and prefill) tokens/s of base vs fused vs runtime-adapter bundles.

    .venv/bin/python -m bench.lora_overhead                     # Gemma 3 270M, random rank-8 q/k/v/o adapter
    .venv/bin/python -m bench.lora_overhead --runs 5 --decode 256

Builds three bundles of one variant (same recipe, ekv and prefill signatures) from the same checkpoint, one export at
a time: the base, the base with the adapter fused into its weights (`--lora-mode fused`), and the runtime-LoRA
bundle (LoRA-input signatures, `--lora-mode runtime`) with its adapter file. Then measures each on this CPU:

- `litert-lm benchmark` (the CLI the device lab uses; device_tests/runners/host.py builds and parses the command),
  one process per run, the same invocation for all three, runs interleaved base/fused/runtime so drift hits all
  alike, each started only once other work on the machine is below --max-busy cores (bench/quiet.py; the load
  seen is recorded with each sample: on a shared 2-core machine contention moves decode speed 3-4x). The CLI
  cannot load an adapter, so the runtime bundle runs its LoRA signatures with unset LoRA inputs: the same work as
  with an adapter;
- litert-lm's Python API with the engine's own counters (bench/litert_lm_session.py), which can load the adapter:
  the runtime bundle *with the adapter file*, next to base and fused through the same path.

Each row also says whether the bundle's model has the base's structure (operators, wiring, tensor shapes and types,
weight buffer sizes; bench/tflite_graph.py): identical structure means identical work per token, which does not
depend on a quiet machine.

The adapter is random (no training needed to measure speed): rank 8 on q/k/v/o_proj of every layer, shapes from
GEMMA3_270M, zero-padded to rank 16 for the runtime bundle (LiteRT-LM accepts ranks 16 and 32 only).
Web: MediaPipe tasks-genai 0.10.29 refuses runtime LoRA for .task bundles (tests/test_web_lora.py records its
message), so there is no web runtime-adapter figure; a fused bundle is a plain bundle there too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from bench.common import median, print_table, ratio, write_results
from bench.litert_lm_session import LoraInput, prompt_of, session_sample
from bench.quiet import add_quiet_arguments, wait_until_quiet
from bench.tflite_graph import structure_digest

MODES = ("base", "fused", "runtime")


@dataclasses.dataclass
class Built:
    mode: str
    path: Path
    bytes: int
    ekv: int
    sha256: str
    adapter: LoraInput | None = None


def build_bundles(args: argparse.Namespace) -> tuple[dict[str, Built], Any]:
    """The three bundles (cached: unchanged inputs are not rebuilt) and the resolved checkpoint."""
    from sdk_build.compose import build
    from sdk_build.lora.spec import make_lora_spec
    from sdk_build.lora.synthetic import write_random_adapter
    from sdk_build.sources import resolve_checkpoint
    from sdk_build.spec import make_variant

    checkpoint = resolve_checkpoint(args.checkpoint, args.cache_dir, allow_custom_shape=args.allow_custom_shape)
    adapter_dir = write_random_adapter(
        args.bundles / f"random-r{args.rank}",
        checkpoint.shape,
        rank=args.rank,
        alpha=2.0 * args.rank,
        strength=args.strength,
        seed=args.seed,
        base_model=checkpoint.ref,
    )
    variant = make_variant(args.recipe, args.ekv, args.prefill_signatures)
    specs = {
        "base": None,
        "fused": make_lora_spec(adapter_dir, "fused"),
        "runtime": make_lora_spec(adapter_dir, "runtime"),
    }
    built = {}
    for mode, lora in specs.items():
        outcome = build(
            args.checkpoint, variant, args.bundles, cache_dir=args.cache_dir, checkpoint=checkpoint, lora=lora
        )
        entry = next(e for e in outcome.entries if e.format == "task")
        adapter_file = getattr(outcome, "adapter_file", None)
        built[mode] = Built(
            mode,
            args.bundles / entry.file,
            entry.bytes,
            entry.ekv,
            entry.sha256,
            LoraInput(entry.lora["rank"], adapter_file) if adapter_file else None,
        )
    return built, checkpoint


def cli_runs(built: dict[str, Built], args: argparse.Namespace) -> dict[str, list[Any]]:
    from device_tests.runners.host import (
        BundleInfo,
        HostRunOptions,
        benchmark_command,
        find_litert_lm,
        parse_benchmark_output,
        pinned_cpus,
        run_process,
    )

    options = HostRunOptions(
        prefill_tokens=args.prefill, decode_tokens=args.decode, runs=args.runs, warmup=0, threads=args.threads
    )
    cpus = pinned_cpus(options.threads, None)
    binary = find_litert_lm()
    samples: dict[str, list[Any]] = {mode: [] for mode in built}
    for run in range(args.runs):
        for mode, item in built.items():
            info = BundleInfo(path=item.path, sha256=item.sha256, quantization=args.recipe, ekv=item.ekv)
            busy, _ = wait_until_quiet(args.max_busy, args.quiet_wait)
            result = run_process(benchmark_command(binary, info, options, cpus), options.timeout_s, cpus)
            if result.returncode != 0:
                raise SystemExit(f"litert-lm benchmark failed on {item.path.name}: {result.output[-800:]}")
            samples[mode].append({**dataclasses.asdict(parse_benchmark_output(result.output)), "busy_before": busy})
            print(
                f"cli run {run + 1}/{args.runs} {mode}: decode {samples[mode][-1]['decode_tokens_per_s']:.1f} "
                f"tok/s (other load before it: {busy:.2f} cores)"
            )
    return samples


def api_runs(built: dict[str, Built], prompt: str, args: argparse.Namespace) -> dict[str, list[Any]]:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    samples: dict[str, list[Any]] = {mode: [] for mode in built}
    for run in range(args.runs):
        for mode, item in built.items():
            busy, _ = wait_until_quiet(args.max_busy, args.quiet_wait)
            sample, decoded = session_sample(item.path, item.ekv, prompt, args.decode, args.threads, item.adapter)
            if decoded < args.decode // 2:
                raise SystemExit(
                    f"{item.path.name} stopped after {decoded} of {args.decode} decode tokens (EOS?); "
                    "use another --seed or --strength"
                )
            samples[mode].append({**dataclasses.asdict(sample), "busy_before": busy, "decoded_tokens": decoded})
            print(
                f"api run {run + 1}/{args.runs} {mode}{' + adapter' if item.adapter else ''}: decode "
                f"{sample.decode_tokens_per_s:.1f} tok/s ({decoded} tokens; other load before it: {busy:.2f} cores)"
            )
    return samples


def summarize(built: dict[str, Built], cli: dict[str, list[Any]], api: dict[str, list[Any]]) -> list[dict[str, Any]]:
    rows = []
    for mode, item in built.items():
        rows.append(
            {
                "mode": mode,
                "file": item.path.name,
                "bytes": item.bytes,
                "adapter_file": item.adapter.adapter_file.name if item.adapter else None,
                "structure": structure_digest(item.path),
                "cli_decode_tok_s": median([s["decode_tokens_per_s"] for s in cli[mode]]),
                "cli_prefill_tok_s": median([s["prefill_tokens_per_s"] for s in cli[mode]]),
                "api_decode_tok_s": median([s["decode_tokens_per_s"] for s in api[mode]]),
                "api_prefill_tok_s": median([s["prefill_tokens_per_s"] for s in api[mode]]),
                "cli_samples": cli[mode],
                "api_samples": api[mode],
            }
        )
    base = rows[0]
    for row in rows:
        row["same_graph_as_base"] = row["structure"] == base["structure"]
        row["cli_decode_vs_base"] = ratio(row["cli_decode_tok_s"], base["cli_decode_tok_s"])
        row["api_decode_vs_base"] = ratio(row["api_decode_tok_s"], base["api_decode_tok_s"])
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="embedded:gemma3-270m")
    parser.add_argument("--allow-custom-shape", action="store_true", help="for tiny test checkpoints")
    parser.add_argument("--recipe", default="dynamic_int8")
    parser.add_argument("--ekv", type=int, default=1024)
    parser.add_argument("--prefill-signatures", type=int, nargs="+", default=[256])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--strength", type=float, default=0.05, help="adapter size relative to the weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefill", type=int, default=256, help="prompt tokens per run")
    parser.add_argument("--decode", type=int, default=128, help="decode tokens per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    add_quiet_arguments(parser)
    parser.add_argument("--bundles", type=Path, default=Path("bundles/lora_overhead"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=Path("reports/bench"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from sdk_build.errors import BuildError

    args = parse_args(argv)
    try:
        built, checkpoint = build_bundles(args)
    except BuildError as exc:
        print(f"lora_overhead: cannot build the bundles: {exc}")
        return 2
    prompt = prompt_of(checkpoint.tokenizer_path, args.prefill)
    cli = cli_runs(built, args)
    api = api_runs(built, prompt, args)
    rows = summarize(built, cli, api)
    print_table(
        f"LoRA at run time: {checkpoint.ref}, {args.recipe}, ekv {args.ekv}, rank {args.rank} q/k/v/o adapter, "
        f"-p {args.prefill} -d {args.decode}, {args.threads} threads, median of {args.runs}",
        [
            "bundle",
            "MiB",
            "graph = base's",
            "CLI decode tok/s",
            "vs base",
            "CLI prefill tok/s",
            "API decode tok/s (adapter loaded)",
            "vs base",
        ],
        [
            [
                r["file"],
                r["bytes"] / 2**20,
                "yes" if r["same_graph_as_base"] else "no",
                r["cli_decode_tok_s"],
                r["cli_decode_vs_base"],
                r["cli_prefill_tok_s"],
                r["api_decode_tok_s"],
                r["api_decode_vs_base"],
            ]
            for r in rows
        ],
    )
    path = write_results(
        "lora_overhead",
        {
            "checkpoint": checkpoint.ref,
            "recipe": args.recipe,
            "ekv": args.ekv,
            "rank": args.rank,
            "prefill_signatures": args.prefill_signatures,
            "prefill_tokens": args.prefill,
            "decode_tokens": args.decode,
            "threads": args.threads,
            "runs": args.runs,
            "rows": rows,
            "web": "not measured: MediaPipe tasks-genai 0.10.29 refuses runtime LoRA for .task bundles "
            '("LoRA is not supported for converted LLM models (.task format) yet")',
        },
        args.results_dir,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
