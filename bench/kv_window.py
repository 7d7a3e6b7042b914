"""Window-sized vs full-length KV caches for Gemma 3's sliding-window layers: memory and speed in LiteRT-LM (CPU).

    python -m bench.kv_window                          # 270M and 1B (random weights), ekv 1280 and 4096, both formats
    python -m bench.kv_window --checkpoint embedded:gemma3-270m --ekv 1280 --format task

For every (checkpoint, ekv) it builds the same variant twice (`--kv-cache window` and `--kv-cache full`; skipped
when already built in `--bundles`), then runs each `.task` and `.litertlm` of both settings in a fresh process
(`bench.litert_lm_memory`): a prompt of `--prompt-tokens` (longer than the 512-token window) and `--decode-tokens`
greedy steps on 2 threads, twice with the same XNNPACK cache folder, first empty (a first launch: weights are packed
and the cache file written) then filled (a later launch). Printed next to each: the catalog's estimate for that
bundle (`sdk_build.artifacts.runtime_memory`), so the estimate is read against what the runtime held. Both settings of a row
pair run in the same invocation, one after the other; the machine's load average is recorded with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import print_table, ratio, write_results
from bench.quiet import add_quiet_arguments, wait_until_quiet
from sdk_build.artifacts.catalog import catalog_entry
from sdk_build.artifacts.manifest import BundleEntry
from sdk_build.convert.export import ExportOptions
from sdk_build.pipeline import build
from sdk_build.sources import resolve_checkpoint
from sdk_build.spec import make_variant

SETTINGS = {"window": True, "full": False}
MIB = 2**20


def build_setting(ref: str, recipe: str, ekv: int, formats: list[str], window: bool, bundles: Path) -> list[BundleEntry]:
    variant = make_variant(recipe, ekv, None, formats=formats)
    folder = bundles / ("window" if window else "full")
    return build(ref, variant, folder, export_options=ExportOptions(window_kv_cache=window)).entries


def run_child(bundle: Path, ekv: int, tokenizer: Path, cache_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.litert_lm_memory", str(bundle), "--ekv", str(ekv), "--tokenizer",
               str(tokenizer), "--cache-dir", str(cache_dir), "--prompt-tokens", str(args.prompt_tokens),
               "--decode-tokens", str(args.decode_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-8:])
        raise RuntimeError(f"{bundle.name}: the LiteRT-LM run exited {done.returncode}:\n{tail}")
    result = json.loads(lines[-1])
    result["load_average_1m"] = os.getloadavg()[0]
    return result


def measure_bundle(entry: BundleEntry, folder: Path, tokenizer: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A first and a later launch of one bundle, sharing one fresh XNNPACK cache folder."""
    with tempfile.TemporaryDirectory(prefix="kv-window-xnnpack-") as cache:
        runs = {}
        for launch in ("first", "later"):
            busy, _ = wait_until_quiet(args.max_busy, args.quiet_wait)
            runs[launch] = {**run_child(folder / entry.file, entry.ekv, tokenizer, Path(cache), args),
                            "busy_cores_before": round(busy, 2)}
    memory = catalog_entry(entry, entry.file)["memory"]
    return {"file": entry.file, "format": entry.format, "ekv": entry.ekv, "model": entry.model,
            "window_kv_cache": bool(entry.extra.get("export_options", {}).get("window_kv_cache")),
            "estimate": memory, "runs": runs}


def table_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in results:
        first, later, memory = r["runs"]["first"], r["runs"]["later"], r["estimate"]
        held = max(first["held_bytes"], later["held_bytes"])
        rows.append([
            r["model"], r["ekv"], r["format"], "window" if r["window_kv_cache"] else "full",
            memory["kv_cache_bytes"] / MIB, first["peak_rss_bytes"] / MIB, later["peak_rss_bytes"] / MIB,
            held / MIB, memory["estimated_runtime_bytes"] / MIB, ratio(memory["estimated_runtime_bytes"], held),
            later["prefill_tok_s"], later["decode_tok_s"], later["load_average_1m"],
        ])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_window", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", help="default: embedded:gemma3-270m and random:gemma3-1b-it")
    parser.add_argument("--ekv", type=int, action="append", help="default: 1280 and 4096")
    parser.add_argument("--format", action="append", choices=["task", "litertlm"], help="default: both")
    parser.add_argument("--recipe", default="dynamic_int8")
    parser.add_argument("--prompt-tokens", type=int, default=1024, help="prompt length (default 1024 > the window)")
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--bundles", type=Path, default=Path("bundles/kv_window"), help="where both settings are built")
    parser.add_argument("--name", default="kv_window", help="results file: reports/bench/NAME.json (default kv_window)")
    add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint or ["embedded:gemma3-270m", "random:gemma3-1b-it"]
    args.ekv = args.ekv or [1280, 4096]
    args.format = args.format or ["task", "litertlm"]
    too_long = [e for e in args.ekv if args.prompt_tokens + args.decode_tokens + 1 > e]
    if too_long:
        parser.error(f"--prompt-tokens + --decode-tokens do not fit in ekv {too_long}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    settings = {"prompt_tokens": args.prompt_tokens, "decode_tokens": args.decode_tokens, "recipe": args.recipe}
    for ref in args.checkpoint:
        tokenizer = resolve_checkpoint(ref).tokenizer_path
        for ekv in args.ekv:
            built = {name: build_setting(ref, args.recipe, ekv, args.format, window, args.bundles)
                     for name, window in SETTINGS.items()}
            for fmt in args.format:
                for name in SETTINGS:
                    entry = next(e for e in built[name] if e.format == fmt)
                    print(f"measuring {entry.file} ({name})", flush=True)
                    results.append(measure_bundle(entry, args.bundles / name, tokenizer, args))
                    print(json.dumps(table_rows(results[-1:])[0]), flush=True)
                    write_results(args.name, {**settings, "complete": False, "results": results})
    print_table(
        f"KV caches of the sliding-window layers: window vs full (LiteRT-LM CPU, 2 threads, {args.prompt_tokens}-token "
        f"prompt + {args.decode_tokens} decode; MiB; speeds from the later launch)",
        ["model", "ekv", "format", "local KV", "KV est.", "peak RSS first", "peak RSS later", "held", "estimate",
         "est./held", "prefill tok/s", "decode tok/s", "load 1m"],
        table_rows(results),
    )
    path = write_results(args.name, {**settings, "complete": True, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
