"""`sdk-build verify`: a bundle in LiteRT-LM (CPU, or the GPU engine in F16/F32) against the fp32 reference."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from sdk_build.cli import options
from sdk_build.cli.help import COMMAND_HELP
from sdk_build.errors import BuildError

if TYPE_CHECKING:
    from sdk_build.verify.engine import EngineConfig
    from sdk_build.verify.fidelity import VerifyReport


def register(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser("verify", help=COMMAND_HELP["verify"])
    verify.add_argument("bundle", type=options.existing_path, help="the .task or .litertlm file (its manifest.json beside it)")
    verify.add_argument("--checkpoint", help="checkpoint the bundle came from (default: from manifest.json)")
    verify.add_argument("--tokens", type=options.positive_int, default=16, help="greedy tokens per prompt (default 16)")
    verify.add_argument("--prompt", action="append", help="prompt (repeatable; default: four fixed prompts and one 88 "
                        "tokens longer than the sliding window when the KV cache holds it)")
    verify.add_argument("--threads", type=options.positive_int, default=2, help="CPU threads (CPU backend; default 2)")
    verify.add_argument("--backend", choices=["cpu", "gpu"], default="cpu",
                        help="cpu (default): LiteRT-LM's XNNPACK backend; gpu: its GPU backend (WebGPU over Vulkan: "
                             "a GPU, or lavapipe / SwiftShader in software)")
    verify.add_argument("--precision", choices=["f16", "f32", "both"], default=None,
                        help="GPU activation precision; both (default) runs and reports F16 and F32 separately")
    verify.add_argument("--min-agreement", type=float, default=None, help="fail below this top-1 agreement (0-1)")
    verify.add_argument("--perplexity-tokens", type=int, default=2048,
                        help="held-out tokens scored for perplexity, bundle and fp32 (default 2048; 0: skip)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    options.add_cache_dir(verify)
    verify.set_defaults(handler=run)


def engine_configs(args: argparse.Namespace) -> list[EngineConfig]:
    from sdk_build.verify.engine import EngineConfig

    if args.backend == "cpu":
        if args.precision is not None:
            raise BuildError("--precision is for --backend gpu (the CPU backend runs float32 activations)")
        return [EngineConfig(threads=args.threads)]
    precisions = ("f16", "f32") if args.precision in (None, "both") else (args.precision,)
    return [EngineConfig(backend="gpu", precision=p) for p in precisions]


def print_report(report: VerifyReport) -> None:
    where = report.run_label
    if report.adapter:
        device = report.adapter["device"]
        print(f"{where} adapter: {report.adapter.get('engine') or device['name']}; Vulkan: {device['name']} "
              f"({device['driver']}{', software' if device['software'] else ''}), f16 {'yes' if device['f16'] else 'no'}, "
              f"max storage buffer {device['max_storage_buffer_range']:,} bytes")
    for result in report.results:
        shown = result.prompt if len(result.prompt) <= 100 else f"{result.prompt[:60]}... ({len(result.prompt)} chars)"
        print(f"prompt:    {shown!r}")
        print(f"  bundle:    {result.bundle_text!r}")
        print(f"  reference: {result.reference_text!r}")
        print(f"  teacher-forced top-1 {result.forced_matches}/{result.forced_positions}; free-running "
              + (f"diverges at token {result.first_divergence}" if result.first_divergence is not None else "identical"))
    if report.reference:
        print(f"reference: {report.reference} ({report.checkpoint})")
    print(f"{report.bundle} [{where}]: top-1 agreement {report.top1_agreement:.1%} (teacher-forced, "
          f"{sum(r.forced_positions for r in report.results)} positions over {len(report.results)} prompts); "
          f"free-running {report.free_running_agreement:.1%}")
    if report.perplexity is not None:
        print(f"{report.bundle} [{where}]: {report.perplexity.describe()}")
    for problem in report.problems:
        print(f"FAIL [{where}]: {problem}")


def run(args: argparse.Namespace) -> int:
    from sdk_build.verify import verify_bundle_runs

    reports = verify_bundle_runs(
        args.bundle,
        engine_configs(args),
        args.checkpoint,
        cache_dir=args.cache_dir,
        new_tokens=args.tokens,
        prompts=tuple(args.prompt) if args.prompt else None,
        min_agreement=args.min_agreement,
        perplexity_tokens=args.perplexity_tokens,
    )
    if args.json:
        data = [r.to_dict() for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    else:
        for report in reports:
            print_report(report)
        if len(reports) > 1:
            print("summary: " + "; ".join(f"{r.run_label} top-1 {r.top1_agreement:.1%}"
                                          f"{'' if r.passed else ' FAIL'}" for r in reports))
    return 0 if all(r.passed for r in reports) else 1


