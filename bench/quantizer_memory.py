"""How much memory one in-process quantization leaves resident, and how much `release_freed_memory` hands back.

A matrix build quantizes in its own process and then starts the next float export in a child; whatever the build
process keeps after quantizing sits beside that export. This prints the process's RSS before the quantization, its
peak, what is still resident afterwards, and what `sdk_build.system.memory.release_freed_memory()` gives back.

    python -m bench.quantizer_memory --float ~/.cache/gemma-edge/exports/<270M export>_f32.tflite
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_results
from sdk_build.convert.quantize import quantize_tflite
from sdk_build.spec import Recipe
from sdk_build.system.memory import own_peak_rss_bytes, release_freed_memory, rss_bytes

MIB = 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quantizer_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--float", dest="float_model", type=Path, required=True, help="a float export (.tflite)")
    parser.add_argument("--recipe", default="dynamic_int8", choices=[r.value for r in Recipe])
    args = parser.parse_args(argv)
    if not args.float_model.is_file():
        raise SystemExit(f"no float export at {args.float_model}; `sdk-build build` writes them under exports/")
    import ai_edge_quantizer.quantizer  # type: ignore[import-untyped]  # noqa: F401 - imported first: code is not kept memory

    before = rss_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        quantize_tflite(args.float_model, Recipe(args.recipe), Path(scratch) / "quantized.tflite")
        seconds = time.monotonic() - started
    kept = rss_bytes()
    released = release_freed_memory()
    after = rss_bytes()
    print(
        f"quantize {args.recipe}: {seconds:.1f} s; RSS before {before / MIB:.0f} MiB, peak {own_peak_rss_bytes() / MIB:.0f}"
        f" MiB, kept afterwards {(kept - before) / MIB:.0f} MiB more; release_freed_memory() gave back "
        f"{released / MIB:.0f} MiB (now {after / MIB:.0f} MiB)"
    )
    summary = {
        "float_model": str(args.float_model),
        "recipe": args.recipe,
        "seconds": seconds,
        "rss_before_bytes": before,
        "peak_rss_bytes": own_peak_rss_bytes(),
        "rss_after_quantize_bytes": kept,
        "released_bytes": released,
        "rss_after_release_bytes": after,
    }
    print(f"wrote {write_results('quantizer_memory', summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
