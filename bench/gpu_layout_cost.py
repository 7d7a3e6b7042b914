"""What the GPU layout costs: the same checkpoint and recipe in the CPU layout and in the GPU targets' layout
(embedding in column blocks under 128 MiB + F16-safe residual scale, `sdk_build/gpu/`), side by side.

    python -m bench.gpu_layout_cost [--checkpoint embedded:gemma3-270m] [--recipe dynamic_int8] [--runs 3]

Prints, for both files: size, largest tensor, CPU top-1 (`sdk-build verify`), CPU prefill/decode tok/s
(`litert-lm benchmark`, 2 threads, runs interleaved, medians), and prefill/decode on this machine's GPU engine in F16
and F32 (the lab's GPU runner: lavapipe where there is no GPU), with GPU-layout / CPU-layout ratios. The CPU layout's
table does not fit a 128 MiB device: its GPU columns then read `unsupported`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import median, print_table, ratio, write_results
from device_tests.bundles import select_bundles
from device_tests.runners.gpu import GpuRunOptions, run_gpu_benchmark
from device_tests.runners.host import HostRunOptions, run_host_benchmark
from sdk_build.gpu.buffers import largest_tensors
from sdk_build.pipeline import build
from sdk_build.spec import make_variant
from sdk_build.verify import verify_bundle

LAYOUTS = {"cpu layout": "android-cpu", "gpu layout": "web-gpu"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_layout_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="embedded:gemma3-270m")
    parser.add_argument("--recipe", default="dynamic_int8")
    parser.add_argument("--ekv", type=int, default=1024)
    parser.add_argument("--prefill-lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefill", type=int, default=256)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--gpu-runs", type=int, default=2, help="GPU engine runs per precision (lavapipe is slow)")
    parser.add_argument("--output", type=Path, default=Path("bundles/layout-cost"))
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()

    files: dict[str, Path] = {}
    for layout, target in LAYOUTS.items():
        variant = make_variant(args.recipe, args.ekv, args.prefill_lengths, formats=["task"], target=target)
        outcome = build(args.checkpoint, variant, args.output / target)
        files[layout] = args.output / target / outcome.entries[0].file
    infos = {layout: select_bundles(path.parent, [f"file={path.name}"])[0] for layout, path in files.items()}

    top1 = {} if args.skip_verify else {layout: verify_bundle(path).top1_agreement for layout, path in files.items()}
    cpu: dict[str, dict[str, list[float]]] = {layout: {"prefill": [], "decode": []} for layout in files}
    options = HostRunOptions(prefill_tokens=args.prefill, decode_tokens=args.decode, runs=1, warmup=0)
    for _ in range(args.runs):  # interleaved: both layouts see the same machine load
        for layout, info in infos.items():
            result = run_host_benchmark(info, options)
            if result.status == "ok":
                cpu[layout]["prefill"].append(result.samples[0].prefill_tokens_per_s)
                cpu[layout]["decode"].append(result.samples[0].decode_tokens_per_s)
    gpu: dict[str, dict[str, object]] = {}
    gpu_options = GpuRunOptions(prefill_tokens=args.prefill, decode_tokens=args.decode, runs=args.gpu_runs, warmup=1)
    for layout, info in infos.items():
        for result in run_gpu_benchmark(info, gpu_options):
            if result.status == "ok":
                gpu[f"{layout} {result.precision}"] = {
                    "prefill": median([s.prefill_tokens_per_s for s in result.samples]),
                    "decode": median([s.decode_tokens_per_s for s in result.samples]),
                    "device": result.environment.device}
            else:
                gpu[f"{layout} {result.precision}"] = {"status": result.status, "message": result.message}

    rows, record = [], {}
    for layout, path in files.items():
        biggest = largest_tensors(path, 1)[0]
        row = {"file": path.name, "bytes": path.stat().st_size, "largest_tensor_bytes": biggest.bytes,
               "cpu_top1": top1.get(layout), "cpu_prefill": median(cpu[layout]["prefill"]),
               "cpu_decode": median(cpu[layout]["decode"]),
               **{f"gpu_{p.lower()}": gpu.get(f"{layout} {p}") for p in ("F16", "F32")}}
        record[layout] = row
        gpu_cells = []
        for precision in ("F16", "F32"):
            cell = gpu.get(f"{layout} {precision}") or {}
            gpu_cells += [cell.get("prefill", cell.get("status")), cell.get("decode", cell.get("status"))]
        rows.append([layout, path.stat().st_size / 2**20, biggest.bytes / 2**20, row["cpu_top1"], row["cpu_prefill"],
                     row["cpu_decode"], *gpu_cells])
    cpu_layout, gpu_layout = record["cpu layout"], record["gpu layout"]
    rows.append(["gpu / cpu layout", ratio(gpu_layout["bytes"], cpu_layout["bytes"]), None, None,
                 ratio(gpu_layout["cpu_prefill"], cpu_layout["cpu_prefill"]),
                 ratio(gpu_layout["cpu_decode"], cpu_layout["cpu_decode"]), None, None, None, None])
    print_table(f"GPU layout cost: {args.checkpoint} {args.recipe} (GPU engine: "
                f"{next((g['device'] for g in gpu.values() if 'device' in g), 'none')})",
                ["layout", "MiB", "largest MiB", "CPU top-1", "CPU prefill", "CPU decode", "GPU F16 prefill",
                 "GPU F16 decode", "GPU F32 prefill", "GPU F32 decode"], rows)
    print(f"results: {write_results('gpu_layout_cost', {'args': vars(args) | {'output': str(args.output)}, 'layouts': record})}")


if __name__ == "__main__":
    main()
