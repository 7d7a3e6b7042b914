"""Which litert-torch export settings load and run best in `@mediapipe/tasks-genai` on WebGPU.

Google's `-web.task` files come from an internal GPU converter; ours come from litert-torch, whose export has knobs
that matter to a GPU executor: the attention mask as an input or built inside the graph, the KV cache layout, and
`gpu_dynamic_shapes` (cache and prefill sizes as "magic" primes a GPU delegate may resize). This script builds the
same variant once per setting (one float export each, then the same quantization), serves them with the demo server,
runs each in headless Chromium through the page's benchmark mode, and prints load time, time to first token,
prefill and decode tokens/s, or the error the page reported.

    python -m bench.web_export_settings                                  # tiny model, every setting (minutes)
    python -m bench.web_export_settings --checkpoint embedded:gemma3-270m --settings default --runs 1

Figures on SwiftShader (no GPU) say whether a setting loads and runs and how the settings compare with each other;
they are not GPU speeds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import print_table, ratio, write_results
from device_tests.runners.web_server import serve_bundles
from sdk_build.convert.export import ExportOptions
from sdk_build.pipeline import build
from sdk_build.spec import make_variant

SETTINGS: dict[str, ExportOptions] = {
    "default": ExportOptions(),
    "gpu_dynamic_shapes": ExportOptions(gpu_dynamic_shapes=True),
    "mask_in_graph": ExportOptions(mask_as_input=False),
    "kv_default_layout": ExportOptions(transposed_kv_cache=False),
}
TINY = "tiny"


def checkpoint_ref(value: str, work: Path) -> tuple[str, bool]:
    """`tiny` makes the tiny Gemma-3-shaped test model under `work`; anything else is an sdk-build reference."""
    if value != TINY:
        return value, False
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    directory = work / "tiny-checkpoint"
    if not (directory / "config.json").exists():
        make_tiny_checkpoint(directory)
    return str(directory), True


def build_setting(
    ref: str, custom: bool, name: str, options: ExportOptions, args: argparse.Namespace, output: Path
) -> str:
    variant = make_variant(
        args.recipe, args.ekv, prefill_lengths=args.prefill, target="web-gpu", output_name=f"web-{name}"
    )
    outcome = build(ref, variant, output, cache_dir=args.cache_dir, allow_custom_shape=custom, export_options=options)
    return outcome.entries[0].file


def run_in_page(base_url: str, bundle_file: str, args: argparse.Namespace) -> dict[str, Any]:
    from web_demo.automation import PageError, run_page_benchmark

    try:
        return run_page_benchmark(
            base_url,
            bundle_file,
            args.precision,
            args.prefill_tokens,
            args.decode_tokens,
            args.runs,
            args.warmup,
            timeout_s=args.timeout,
        )
    except PageError as exc:
        return {"ok": False, "error": str(exc).splitlines()[0]}


def summarise(name: str, result: dict[str, Any]) -> dict[str, Any]:
    summary = result.get("summary") or {}
    return {
        "setting": name,
        "ok": bool(result.get("ok")),
        "error": result.get("error"),
        "precision_used": result.get("precision_used"),
        "load_ms": result.get("load_ms"),
        "ttft_ms": summary.get("ttft_ms"),
        "prefill_tok_s": summary.get("prefill_tok_s"),
        "decode_tok_s": summary.get("decode_tok_s"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.web_export_settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=TINY, help="tiny (default) or an sdk-build checkpoint reference")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--recipe", default="dynamic_int8")
    parser.add_argument("--ekv", type=int, default=1024, help="KV cache (default 1024 = the page's maxTokens cap)")
    parser.add_argument("--prefill", type=int, action="append", help="prefill signatures (default 32 128 512)")
    parser.add_argument("--precision", choices=["auto", "f16", "f32"], default="f32")
    parser.add_argument("--prefill-tokens", type=int, default=64)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per setting in the page")
    parser.add_argument("--work", type=Path, default=None, help="bundle folder (default: a temp dir)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.prefill = args.prefill or [32, 128, 512]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="web-settings-"))
    ref, custom = checkpoint_ref(args.checkpoint, work)
    files = {name: build_setting(ref, custom, name, SETTINGS[name], args, work / "bundles") for name in args.settings}
    rows: list[dict[str, Any]] = []
    with serve_bundles(work / "bundles") as base_url:
        for name, bundle_file in files.items():
            print(f"page benchmark: {name} ({bundle_file})", flush=True)
            rows.append(summarise(name, run_in_page(base_url, bundle_file, args)))
    baseline = next((r for r in rows if r["setting"] == "default" and r["ok"]), None)
    print_table(
        f"Web export settings ({args.checkpoint}, {args.recipe}, ekv {args.ekv}, {args.precision})",
        ["setting", "loads+runs", "load ms", "TTFT ms", "prefill tok/s", "decode tok/s", "decode vs default", "error"],
        [
            [
                r["setting"],
                "yes" if r["ok"] else "no",
                r["load_ms"],
                r["ttft_ms"],
                r["prefill_tok_s"],
                r["decode_tok_s"],
                ratio(r["decode_tok_s"] or 0, baseline["decode_tok_s"]) if baseline and r["ok"] else None,
                (r["error"] or "")[:80],
            ]
            for r in rows
        ],
    )
    path = write_results(
        f"web_export_settings_{Path(args.checkpoint).name.replace(':', '_')}",
        {
            "checkpoint": args.checkpoint,
            "recipe": args.recipe,
            "ekv": args.ekv,
            "prefill": args.prefill,
            "precision": args.precision,
            "prefill_tokens": args.prefill_tokens,
            "decode_tokens": args.decode_tokens,
            "runs": args.runs,
            "settings": rows,
        },
    )
    print(f"wrote {path}")
    return 0 if any(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
