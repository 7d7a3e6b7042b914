"""`sdk-build matrix --executor ray` against `--executor local` on one machine: wall time and peak memory.

    .venv/bin/python -m bench.matrix_executor                    # the 270M matrix in bench/matrix_executor.toml
    .venv/bin/python -m bench.matrix_executor --jobs 2 --order ray,local

Each side is the real CLI in a child process, from an empty cache (the checkpoint resolution and both float exports
are part of each side's time), into its own output folder. Memory is the peak summed over the whole process tree
(bench/process_tree.py: RSS and PSS sampled from /proc), which with `--executor ray` and no cluster running includes
the Ray instance the driver starts (GCS, raylet, dashboard agent, the workers) and the export child processes.
The two sides' bundles must be byte-identical (sha256 of each file), or the run fails.

What it shows on a small machine: Ray's fixed cost (starting a one-machine cluster, its daemons' memory) against
what it gains by running export groups side by side where the local executor's `--jobs 1` runs them in turn.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import print_table, ratio, write_results
from bench.process_tree import MeasuredRun, run_measured

DEFAULT_MATRIX = Path(__file__).with_name("matrix_executor.toml")


def measure(executor: str, matrix: Path, work: Path, jobs: int) -> tuple[MeasuredRun, dict[str, str]]:
    """One side: the CLI from an empty cache into an empty folder; (measurement, sha256 per bundle)."""
    out, cache = work / f"out-{executor}", work / f"cache-{executor}"
    command = [sys.executable, "-m", "sdk_build", "matrix", "--matrix", str(matrix), "--output", str(out),
               "--cache-dir", str(cache), "--executor", executor, "--jobs", str(jobs)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # ray: a new one-machine cluster
    run = run_measured(command, env={**env, "GEMMA_EDGE_QUIET": "1"}, log=work / f"{executor}.log").check()
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.task"))}
    print(f"{executor}: {run.seconds:.1f} s, peak tree RSS {run.peak_tree_rss_bytes / 2**30:.2f} GiB, "
          f"PSS {run.peak_tree_pss_bytes / 2**30:.2f} GiB, {len(hashes)} bundles", flush=True)
    return run, hashes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX)
    parser.add_argument("--jobs", type=int, default=1, help="--jobs of the local side (default 1, the CLI default)")
    parser.add_argument("--order", default="local,ray", help="which side runs first (default local,ray)")
    parser.add_argument("--work", type=Path, default=None, help="folder for caches and outputs (default: a temp one)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="gemma-edge-matrix-executor-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, MeasuredRun] = {}
    hashes: dict[str, dict[str, str]] = {}
    try:
        for executor in args.order.split(","):
            runs[executor], hashes[executor] = measure(executor, args.matrix, work, args.jobs)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if hashes["ray"] != hashes["local"] or not hashes["local"]:
        print("matrix_executor: the two executors' bundles differ:", hashes)
        return 1
    local, ray = runs["local"], runs["ray"]
    rows = [[name, run.seconds, run.peak_tree_rss_bytes / 2**30, run.peak_tree_pss_bytes / 2**30]
            for name, run in runs.items()]
    rows.append(["ray / local", ratio(ray.seconds, local.seconds),
                 ratio(ray.peak_tree_rss_bytes, local.peak_tree_rss_bytes),
                 ratio(ray.peak_tree_pss_bytes, local.peak_tree_pss_bytes)])
    print_table(f"sdk-build matrix {args.matrix.name} ({len(hashes['local'])} bundles, byte-identical)",
                ["executor", "wall s", "peak tree RSS GiB", "peak tree PSS GiB"], rows)
    path = write_results("matrix_executor", {
        "matrix": args.matrix.read_text(), "local_jobs": args.jobs, "bundles": hashes["local"],
        "runs": {name: {"seconds": round(run.seconds, 1), "peak_tree_rss_bytes": run.peak_tree_rss_bytes,
                        "peak_tree_pss_bytes": run.peak_tree_pss_bytes, "command": list(run.command)}
                 for name, run in runs.items()},
        "ratio_seconds": ratio(ray.seconds, local.seconds),
        "ratio_peak_rss": ratio(ray.peak_tree_rss_bytes, local.peak_tree_rss_bytes),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
