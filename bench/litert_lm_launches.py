"""Peak RSS of `litert-lm benchmark` on a `.task` and a `.litertlm` of the same model: first launch vs later launch.

    python -m bench.litert_lm_launches BUNDLE.task BUNDLE.litertlm --ekv 1280

Why: issue 22's hand measurement (270M q8, ekv 1024) had the `.litertlm` peak at 694.9 MB and the `.task` at
553.4 MB, and the `.litertlm` at 577.3 MB with `--ringbuffers-local-attention true`, an option LiteRT-LM documents
as reaching only its GPU Artisan backend. XNNPACK writes its repacked-weight cache next to the model on the first
launch (packing every fully connected weight in memory) and maps that file on later launches, so which run came
first decides the peak. Each bundle is hard-linked into a fresh folder (an empty cache), then run in this order, one
after the other, each a fresh process under `/usr/bin/time -v`: first launch, later launch, later launch with
`--ringbuffers-local-attention true`, and `--cache no`. Printed: max RSS, its ratio to the later launch of the same
file, prefill/decode tok/s, and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import print_table, ratio, write_results

CASES = [
    ("first launch", ["--cache", "disk"]),
    ("later launch", ["--cache", "disk"]),
    ("later, ringbuffers", ["--cache", "disk", "--ringbuffers-local-attention", "true"]),
    ("no cache", ["--cache", "no"]),
]
MIB = 2**20


def litert_lm() -> str:
    sibling = Path(sys.executable).with_name("litert-lm")
    return str(sibling) if sibling.exists() else "litert-lm"


def run_case(model: Path, ekv: int, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    command = ["/usr/bin/time", "-v", litert_lm(), "benchmark", str(model), "-p", str(args.prefill), "-d",
               str(args.decode), "--max-num-tokens", str(ekv), "--cpu-thread-count", str(args.threads), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    text = done.stdout + done.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    prefill = re.search(r"Prefill speed:\s+([\d.]+)", text)
    decode = re.search(r"Decode speed:\s+([\d.]+)", text)
    if done.returncode != 0 or not rss or not prefill:
        tail = "\n".join(text.splitlines()[-10:])
        raise RuntimeError(f"{model.name} {' '.join(extra)} exited {done.returncode}:\n{tail}")
    return {"max_rss_bytes": int(rss.group(1)) * 1024, "prefill_tok_s": float(prefill.group(1)),
            "decode_tok_s": float(decode.group(1)) if decode else None, "load_average_1m": os.getloadavg()[0],
            "cache_files_bytes": sum(p.stat().st_size for p in model.parent.glob("*.xnnpack_cache"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.litert_lm_launches", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--ekv", type=int, required=True)
    parser.add_argument("--prefill", type=int, default=512)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="litert_lm_launches")
    args = parser.parse_args(argv)
    results, rows = [], []
    for bundle in args.bundles:
        with tempfile.TemporaryDirectory(prefix="launches-") as folder:
            model = Path(folder) / bundle.name
            try:
                os.link(bundle, model)
            except OSError:
                model.symlink_to(bundle.resolve())
            runs = {}
            for case, extra in CASES:
                print(f"{bundle.name}: {case}", flush=True)
                runs[case] = run_case(model, args.ekv, extra, args)
        results.append({"file": bundle.name, "runs": runs})
        later = runs["later launch"]["max_rss_bytes"]
        for case, run in runs.items():
            rows.append([bundle.name, case, run["max_rss_bytes"] / MIB, ratio(run["max_rss_bytes"], later),
                         run["cache_files_bytes"] / MIB, run["prefill_tok_s"], run["decode_tok_s"],
                         run["load_average_1m"]])
    print_table(
        f"litert-lm benchmark -p {args.prefill} -d {args.decode}, {args.threads} threads, ekv {args.ekv}: max RSS (MiB)",
        ["file", "launch", "max RSS", "/ later launch", "cache file", "prefill tok/s", "decode tok/s", "load 1m"], rows,
    )
    path = write_results(args.name, {"ekv": args.ekv, "prefill": args.prefill, "decode": args.decode,
                                     "threads": args.threads, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
