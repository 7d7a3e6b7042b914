"""litert-torch's default conversion against its lightweight conversion, for the float export of one checkpoint.

Each setting exports the same (checkpoint, ekv, prefill set) in its own child process (`sdk_build.convert.export_worker`,
as a build does) into an empty cache; then the two files are compared:
- structure: signatures, operators, tensors and weight-buffer bytes must be equal; tensor names may differ
  (the lightweight route names weight constants `arith.constantN`);
- outputs: one prefill of random tokens at the smallest prefill signature, then one decode step, on both files
  through the LiteRT interpreter: the largest absolute logit difference and whether the argmax agrees.
It prints wall time, peak RSS of the export child and file size for each, and lightweight / default ratios.

    python -m bench.export_conversion                                   # the embedded 270M
    python -m bench.export_conversion --checkpoint random:gemma3-1b-it --ekv 1280 --prefill 32 128 512 1280
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import print_table, ratio, write_results
from sdk_build.convert.export import ExportOptions
from sdk_build.pipeline import ensure_float_export
from sdk_build.sources import default_cache_dir, resolve_checkpoint
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import make_variant

SETTINGS = {"default": ExportOptions(lightweight_conversion=False), "lightweight": ExportOptions()}


@dataclasses.dataclass(frozen=True)
class ExportRun:
    setting: str
    seconds: float
    peak_rss_bytes: int
    file_bytes: int


@dataclasses.dataclass(frozen=True)
class GraphSummary:
    """What a float export computes with, without names: equal summaries mean the same graph and weights' layout."""

    signatures: tuple[str, ...]
    subgraphs: int
    operators: int
    tensors: int
    buffer_bytes: int
    tensor_names: tuple[bytes, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    same_structure: bool
    renamed_tensors: int
    max_abs_logit_difference: float
    same_argmax: bool


def summarize(path: Path) -> GraphSummary:
    from tensorflow.lite.python import schema_py_generated as schema_fb  # type: ignore[import-untyped]

    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(path.read_bytes(), 0))
    graphs = model.subgraphs or []
    return GraphSummary(
        signatures=tuple(sorted(s.signatureKey.decode() for s in model.signatureDefs or [])),
        subgraphs=len(graphs),
        operators=sum(len(g.operators or []) for g in graphs),
        tensors=sum(len(g.tensors or []) for g in graphs),
        # inline data, or (files over 2 GB) the offset/size of data stored after the flatbuffer
        buffer_bytes=sum(len(b.data) if b.data is not None else int(b.size or 0) for b in model.buffers or []),
        tensor_names=tuple(t.name or b"" for g in graphs for t in g.tensors or []),
    )


def prefill_then_decode_logits(path: Path, seed: int = 0) -> Any:
    """Logits of one decode step after prefilling random tokens through the smallest prefill signature."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    prefills = [s for s in interpreter.get_signature_list() if s.startswith("prefill")]
    prefill = interpreter.get_signature_runner(min(prefills, key=lambda s: int(s.rsplit("_", 1)[-1])))
    decode = interpreter.get_signature_runner("decode")
    rng = np.random.default_rng(seed)

    def inputs(runner: Any, start: int, cache: dict[str, Any]) -> dict[str, Any]:
        feed = {}
        for name, detail in runner.get_input_details().items():
            shape, dtype = detail["shape"], detail["dtype"]
            if name == "tokens":
                feed[name] = rng.integers(2, 256, size=shape).astype(dtype)  # within any vocabulary, tiny ones too
            elif name == "input_pos":
                feed[name] = np.arange(start, start + shape[0], dtype=dtype)
            elif name == "mask":
                mask = np.full(shape, -1e30, dtype=dtype)
                for row in range(shape[2]):
                    mask[..., row, : start + row + 1] = 0
                feed[name] = mask
            else:
                feed[name] = cache.get(name, np.zeros(shape, dtype))
        return feed

    prefill_inputs = inputs(prefill, 0, {})
    cache = prefill(**prefill_inputs)
    length = len(prefill_inputs["input_pos"])
    return decode(**inputs(decode, length, cache))["logits"]


def compare(default: Path, lightweight: Path) -> Comparison:
    import numpy as np

    a, b = summarize(default), summarize(lightweight)
    same = dataclasses.replace(a, tensor_names=()) == dataclasses.replace(b, tensor_names=())
    renamed = sum(x != y for x, y in zip(a.tensor_names, b.tensor_names, strict=False))
    logits_a, logits_b = prefill_then_decode_logits(default), prefill_then_decode_logits(lightweight)
    return Comparison(
        same_structure=same,
        renamed_tensors=renamed,
        max_abs_logit_difference=float(np.max(np.abs(logits_a - logits_b))),
        same_argmax=bool(logits_a.argmax() == logits_b.argmax()),
    )


def export_once(checkpoint: Checkpoint, setting: str, ekv: int, prefill: Sequence[int], cache: Path) -> tuple[ExportRun, Path]:
    variant = make_variant("fp32", ekv, prefill)
    started = time.monotonic()
    path, peak = ensure_float_export(checkpoint, variant, cache, SETTINGS[setting])
    return ExportRun(setting, time.monotonic() - started, peak, path.stat().st_size), path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_conversion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="embedded:gemma3-270m")
    parser.add_argument("--ekv", type=int, default=1024)
    parser.add_argument("--prefill", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the checkpoint is cached")
    parser.add_argument("--allow-custom-shape", action="store_true", help="for tiny test checkpoints")
    parser.add_argument("--work", type=Path, default=None, help="where the two exports go (default: a temp dir)")
    args = parser.parse_args(argv)

    checkpoint = resolve_checkpoint(args.checkpoint, args.cache_dir or default_cache_dir(),
                                    allow_custom_shape=args.allow_custom_shape)
    with tempfile.TemporaryDirectory(dir=args.work, prefix="export-conversion-") as scratch:
        runs, paths = [], {}
        for setting in SETTINGS:  # each into its own empty cache: nothing is reused
            run, paths[setting] = export_once(checkpoint, setting, args.ekv, args.prefill, Path(scratch) / setting)
            print(f"{setting}: {run.seconds:.1f} s, peak RSS {run.peak_rss_bytes / 1e9:.2f} GB, {run.file_bytes:,} bytes")
            runs.append(run)
        result = compare(paths["default"], paths["lightweight"])
    default, light = runs
    print_table(
        f"Float export of {args.checkpoint} (ekv {args.ekv}, prefill {args.prefill})",
        ["conversion", "seconds", "peak RSS GB", "bytes"],
        [[r.setting, r.seconds, r.peak_rss_bytes / 1e9, f"{r.file_bytes:,}"] for r in runs],
    )
    time_ratio, peak_ratio = ratio(light.seconds, default.seconds), ratio(light.peak_rss_bytes, default.peak_rss_bytes)
    print(f"lightweight / default: time {time_ratio:.2f}x, peak RSS {peak_ratio:.2f}x; same structure "
          f"{result.same_structure} ({result.renamed_tensors} tensors renamed); max |logit difference| "
          f"{result.max_abs_logit_difference:g}, same argmax {result.same_argmax}")
    path = write_results(f"export_conversion_{checkpoint.model}", {
        "checkpoint": args.checkpoint, "ekv": args.ekv, "prefill": args.prefill,
        "runs": [dataclasses.asdict(r) for r in runs], "comparison": dataclasses.asdict(result),
        "time_ratio_lightweight_over_default": time_ratio, "peak_ratio_lightweight_over_default": peak_ratio,
    })
    print(f"wrote {path}")
    return 0 if result.same_structure and result.same_argmax else 1


if __name__ == "__main__":
    sys.exit(main())
