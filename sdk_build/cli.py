"""`sdk-build`: a thin argument parser over the stage functions; errors become one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sdk_build.errors import BuildError, find_os_error, os_error_message
from sdk_build.sources.resolve import DEFAULT_CHECKPOINT
from sdk_build.terminal import printable


def _existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return number


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _executor(value: str) -> str:
    from sdk_build.executors import check_executor

    try:
        return check_executor(value)
    except BuildError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _byte_size(value: str) -> int:
    """A byte count such as 134217728, 128MiB or 256MB (0 allowed: "none")."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size; write e.g. 134217728, 128MiB or 256MB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache for checkpoints and float exports "
                        "(default $GEMMA_EDGE_CACHE or ~/.cache/gemma-edge)")


def _add_lora(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lora", type=_existing_path, default=None, metavar="PEFT_DIR",
                        help="apply this LoRA adapter (Hugging Face PEFT folder: adapter_config.json + "
                        "adapter_model.safetensors)")
    parser.add_argument("--lora-mode", choices=["fused", "runtime"], default=None,
                        help="fused (default): merge W + (alpha/r)*B@A before conversion, no run-time cost; "
                        "runtime: LoRA-input signatures + a separate adapter file (LiteRT-LM CPU; "
                        "see docs/adapters.md)")


def _add_kv_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kv-cache", choices=["window", "full"], default=None,
                        help="window: sliding-window layers keep 512-token ring caches; full: every layer keeps ekv "
                        "tokens (default: window for files only android-cpu uses, where the estimate says it saves memory; "
                        "see README 'KV cache and the sliding window')")


def _export_options(args: argparse.Namespace):  # -> ExportOptions | None
    from sdk_build.export import ExportOptions

    return None if args.kv_cache is None else ExportOptions(window_kv_cache=args.kv_cache == "window")


def _lora_spec(args: argparse.Namespace):  # -> LoraSpec | None
    from sdk_build.errors import AdapterError
    from sdk_build.lora.spec import make_lora_spec

    if args.lora is None:
        if args.lora_mode is not None:
            raise AdapterError("--lora-mode needs --lora PEFT_DIR (the adapter to apply)")
        return None
    return make_lora_spec(args.lora, args.lora_mode or "fused")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gemma-edge")
    except PackageNotFoundError:  # a checkout run without installing it
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from sdk_build.spec import BundleFormat, Recipe, Target

    parser = argparse.ArgumentParser(prog="sdk-build", description="Build Gemma 3 on-device bundles.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build one variant (.task and/or .litertlm) into an output folder")
    build.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help="embedded:gemma3-270m (default), a local HF or MLX folder, FILE.gguf, hf:ORG/NAME[@REV], "
                       "modelscope:ORG/NAME[@REV], random:gemma3-1b")
    build.add_argument("--recipe", required=True, help="one of: " + ", ".join(r.value for r in Recipe)
                       + "; or int4: the target's default int4 recipe (README \"Recipes\")")
    build.add_argument("--ekv", type=_positive_int, required=True, help="KV cache size in tokens")
    build.add_argument("--prefill", type=_positive_int, action="append",
                       help="prefill signature length (repeatable; default: those of 32 128 512 1280 that fit --ekv)")
    build.add_argument("--format", action="append", choices=[f.value for f in BundleFormat],
                       help="bundle format (repeatable; default task)")
    build.add_argument("--target", default=Target.ANDROID_CPU.value, choices=[t.value for t in Target],
                       help="device family the variant is for (default android-cpu); GPU targets get the GPU layout")
    build.add_argument("--output", type=Path, default=Path("bundles"), help="output folder (default bundles/)")
    build.add_argument("--name", help="output file stem (default: the naming of Google's litert-community/Gemma3-1B-IT files)")
    build.add_argument("--gpu-buffer-limit", type=_byte_size, default=None, metavar="BYTES",
                       help="largest GPU buffer a weight may need, e.g. 128MiB or 256MB (default: 128MiB for GPU "
                            "targets, none for CPU targets; 0: none): sets the GPU layout (sdk_build/gpu/layout.py)")
    build.add_argument("--force", action="store_true", help="rebuild even if an identical bundle exists")
    build.add_argument("--allow-custom-shape", action="store_true",
                       help="accept Gemma-3-shaped models other than 270M/1B (tiny test models)")
    _add_kv_cache(build)
    _add_lora(build)
    _add_common(build)

    verify = commands.add_parser("verify", help="run a bundle with LiteRT-LM and compare with the fp32 reference")
    verify.add_argument("bundle", type=_existing_path, help="the .task or .litertlm file (its manifest.json beside it)")
    verify.add_argument("--checkpoint", help="checkpoint the bundle came from (default: from manifest.json)")
    verify.add_argument("--tokens", type=_positive_int, default=16, help="greedy tokens per prompt (default 16)")
    verify.add_argument("--prompt", action="append", help="prompt (repeatable; default: four fixed prompts and one 88 tokens longer than the "
                        "sliding window when the KV cache holds it)")
    verify.add_argument("--threads", type=_positive_int, default=2, help="CPU threads (CPU backend; default 2)")
    verify.add_argument("--backend", choices=["cpu", "gpu"], default="cpu",
                        help="cpu (default): LiteRT-LM's XNNPACK backend; gpu: its GPU backend (WebGPU over Vulkan: "
                             "a GPU, or lavapipe / SwiftShader in software)")
    verify.add_argument("--precision", choices=["f16", "f32", "both"], default=None,
                        help="GPU activation precision; both (default) runs and reports F16 and F32 separately")
    verify.add_argument("--min-agreement", type=float, default=None, help="fail below this top-1 agreement (0-1)")
    verify.add_argument("--perplexity-tokens", type=int, default=2048,
                        help="held-out tokens scored for perplexity, bundle and fp32 (default 2048; 0: skip)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_common(verify)

    defaults = commands.add_parser("build-defaults", help="build the default bundle set (sdk_build/defaults.toml)")
    defaults.add_argument("--file", type=_existing_path, default=None, help="a bundle-set TOML (default: built-in)")
    defaults.add_argument("--output", type=Path, default=Path("bundles"), help="output folder (default bundles)")
    defaults.add_argument("--verify", action="store_true", help="verify each .task after building")
    _add_common(defaults)

    matrix = commands.add_parser("matrix", help="build every variant of a target matrix (TOML)")
    matrix.add_argument("--matrix", type=_existing_path, default=None, help="matrix file (default: Gemma 3 1B set)")
    matrix.add_argument("--targets", nargs="+", choices=[t.value for t in Target], help="only these targets")
    matrix.add_argument("--checkpoint", action="append", default=None,
                        help="overrides the matrix file's checkpoint; repeat for several (one output subfolder each)")
    matrix.add_argument("--checkpoints-file", type=_existing_path, default=None,
                        help="a file of checkpoint references, one a line (# comments), built like repeated --checkpoint")
    matrix.add_argument("--executor", type=_executor, default="local",
                        help="local (default: this machine, --jobs exports at once), ray (the Ray cluster running "
                        "here, else a new one on this machine) or ray://HEAD:PORT (a Ray cluster's client port); "
                        "see docs/ray.md")
    matrix.add_argument("--output", type=Path, default=Path("bundles"), help="output folder (default bundles)")
    matrix.add_argument("--jobs", type=_positive_int, default=1, help="float exports to run at once (memory permitting)")
    matrix.add_argument("--allow-custom-shape", action="store_true",
                        help="accept a Gemma-3-shaped checkpoint of another size (tiny test models)")
    matrix.add_argument("--json", type=Path, default=None, help="also write the per-variant table as JSON here")
    _add_kv_cache(matrix)
    _add_lora(matrix)
    _add_common(matrix)

    catalog = commands.add_parser("catalog", help="write catalog.json (what apps read to pick and verify bundles)")
    catalog.add_argument("--bundles", type=_existing_path, default=Path("bundles"), help="bundle folder (manifest.json)")
    catalog.add_argument("--output", default=None, help="write here instead of BUNDLES/catalog.json; '-' prints it")

    pull = commands.add_parser("pull", help="download bundles from a catalog: resumable, sha256-verified")
    pull.add_argument("--from", dest="source", required=True,
                      help="http(s)://host:port (a gemma-edge server), a catalog.json URL or file, a folder, "
                      "or hf:ORG/NAME[@REV]")
    pull.add_argument("--dest", type=Path, required=True, help="folder to download into")
    pull.add_argument("--target", choices=[t.value for t in Target], help="only bundles for this target")
    pull.add_argument("--quantization", help="only this recipe, e.g. dynamic_int8, dynamic_int4_block32")
    pull.add_argument("--ekv", type=_positive_int, help="only this KV cache size")
    pull.add_argument("--format", choices=[f.value for f in BundleFormat], help="only this bundle format")
    pull.add_argument("--model", help="only this model, e.g. gemma3-1b")
    pull.add_argument("--file", help="only the bundle with this file name")
    pull.add_argument("--list", action="store_true", help="print the selection and download nothing")
    pull.add_argument("--retries", type=int, default=3, help="resume a dropped transfer this many times (default 3)")
    pull.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    _add_common(pull)

    tiny = commands.add_parser("make-tiny", help="write a tiny Gemma-3-shaped checkpoint (for smoke tests)")
    tiny.add_argument("directory", type=Path, help="folder to write the tiny checkpoint into")
    tiny.add_argument("--seed", type=int, default=0, help="random seed of its weights (default 0)")
    return parser


def run_build(args: argparse.Namespace) -> int:
    from sdk_build.compose import build
    from sdk_build.spec import make_variant

    variant = make_variant(
        args.recipe, args.ekv, args.prefill, formats=args.format or ["task"], target=args.target, output_name=args.name,
        gpu_buffer_limit=args.gpu_buffer_limit,
    )
    outcome = build(
        args.checkpoint, variant, args.output, cache_dir=args.cache_dir, allow_custom_shape=args.allow_custom_shape,
        force=args.force, lora=_lora_spec(args), export_options=_export_options(args),
    )
    for entry in outcome.entries:
        print(f"{args.output / entry.file}\t{entry.bytes}\t{entry.sha256}")
    adapter_file = getattr(outcome, "adapter_file", None)
    if adapter_file is not None:
        print(f"{adapter_file}\t{adapter_file.stat().st_size}\tadapter")
    return 0


def _engine_configs(args: argparse.Namespace) -> list:
    from sdk_build.engine import EngineConfig

    if args.backend == "cpu":
        if args.precision is not None:
            raise BuildError("--precision is for --backend gpu (the CPU backend runs float32 activations)")
        return [EngineConfig(threads=args.threads)]
    precisions = ("f16", "f32") if args.precision in (None, "both") else (args.precision,)
    return [EngineConfig(backend="gpu", precision=p) for p in precisions]


def _print_report(report) -> None:
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


def run_verify(args: argparse.Namespace) -> int:
    from sdk_build.verify import verify_bundle_runs

    reports = verify_bundle_runs(
        args.bundle,
        _engine_configs(args),
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
            _print_report(report)
        if len(reports) > 1:
            print("summary: " + "; ".join(f"{r.run_label} top-1 {r.top1_agreement:.1%}"
                                          f"{'' if r.passed else ' FAIL'}" for r in reports))
    return 0 if all(r.passed for r in reports) else 1


def run_build_defaults(args: argparse.Namespace) -> int:
    from sdk_build.bundle_set import load_bundle_set
    from sdk_build.compose import build
    from sdk_build.verify import verify_bundle

    checkpoint, variants = load_bundle_set(args.file)
    failures = 0
    for variant in variants:
        outcome = build(checkpoint, variant, args.output, cache_dir=args.cache_dir)
        for entry in outcome.entries:
            print(f"{args.output / entry.file}\t{entry.bytes}\t{entry.sha256}")
            if args.verify and entry.format == "task":
                report = verify_bundle(args.output / entry.file, cache_dir=args.cache_dir)
                first = report.results[0]
                print(f"  verify: {first.prompt!r} -> {first.bundle_text!r}; top-1 agreement "
                      f"{report.top1_agreement:.1%}" + ("" if report.passed else f"; FAIL: {report.problems}"))
                failures += not report.passed
    return 1 if failures else 0


def run_matrix(args: argparse.Namespace) -> int:
    from sdk_build.matrix import load_matrix, plan_job, run_jobs
    from sdk_build.matrix_checkpoints import checkpoint_list, output_folders
    from sdk_build.spec import Target

    matrix = load_matrix(args.matrix)
    refs = checkpoint_list(args.checkpoint, args.checkpoints_file, matrix.checkpoint)
    folders = output_folders(refs, args.output)
    lora = _lora_spec(args)
    jobs = [plan_job(ref, matrix, folder, cache_dir=args.cache_dir,
                     only=tuple(Target(t) for t in args.targets) if args.targets else None,
                     allow_custom_shape=args.allow_custom_shape, lora=lora,
                     window_kv_cache=None if args.kv_cache is None else args.kv_cache == "window")
            for ref, folder in zip(refs, folders, strict=True)]
    outcomes = run_jobs(jobs, jobs=args.jobs, executor=args.executor)
    rows = []
    print(f"{'file':62} {'MiB':>9} {'published':>9} {'diff':>7} {'seconds':>8} {'peak GB':>8}  targets")
    for outcome in outcomes:
        folder = "" if len(refs) == 1 or outcome.output_dir is None else f"{outcome.output_dir.name}/"
        for file, size in zip(outcome.files, outcome.bytes) or [("(failed)", 0)]:
            difference = matrix.size_difference(file, size)
            published = f"{matrix.published_mib[file]:9.0f} {difference:+7.2%}" if difference is not None else f"{'-':>9} {'-':>7}"
            print(f"{folder + file:62} {size / 2**20:9.1f} {published} {outcome.seconds:8.1f} {outcome.peak_rss_bytes / 1e9:8.1f}  "
                  f"{','.join(t.value for t in outcome.planned.targets)}{'  (up to date)' if outcome.skipped else ''}")
            rows.append({"file": file, "bytes": size, "published_mib": matrix.published_mib.get(file),
                         "size_difference": difference, "seconds": round(outcome.seconds, 1),
                         "peak_rss_bytes": outcome.peak_rss_bytes, "skipped": outcome.skipped,
                         "targets": [t.value for t in outcome.planned.targets], "error": outcome.error,
                         **({"folder": str(outcome.output_dir)} if folder else {}),
                         **({"node": outcome.node, "node_id": outcome.node_id} if outcome.node else {}),
                         **({"export_node_id": outcome.export_node_id} if outcome.export_node_id else {})})
        if outcome.error:
            print(f"  FAILED: {outcome.error}")
    print(f"total {sum(o.seconds for o in outcomes):.1f} s over {len(outcomes)} variants")
    if args.json:
        from sdk_build.atomic import atomic_write_json

        atomic_write_json(args.json, rows)
    return 1 if any(o.error for o in outcomes) else 0


def run_catalog(args: argparse.Namespace) -> int:
    from sdk_build.catalog import build_catalog, write_catalog
    from sdk_build.manifest import load_manifest

    if args.output == "-":
        print(json.dumps(build_catalog(load_manifest(args.bundles).bundles), indent=2))
        return 0
    path, catalog = write_catalog(args.bundles, Path(args.output) if args.output else None)
    print(f"{'file':62} {'MiB':>8} {'runtime MiB':>11} {'min device':>10}  targets")
    for bundle in catalog["bundles"]:  # the manifest's words: printed harmless
        memory = bundle["memory"]
        print(printable(f"{bundle['file']:62} {bundle['bytes'] / 2**20:8.1f} "
                        f"{memory['estimated_runtime_bytes'] / 2**20:11.1f} "
                        f"{memory['min_device_memory_bytes'] / 2**30:7.0f} GiB  {','.join(bundle['targets'])}"))
    print(printable(f"wrote {path} ({len(catalog['bundles'])} bundles)"))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from sdk_build.catalog import Selection
    from sdk_build.pull import plan, pull

    selection = Selection(target=args.target, quantization=args.quantization, ekv=args.ekv, format=args.format,
                          model=args.model, file=args.file)
    if args.list:
        catalog, chosen = plan(args.source, selection, timeout=args.timeout, cache_dir=args.cache_dir)
        print(f"catalog: {printable(catalog.location)}")
        for bundle in chosen:  # every field is the catalog's: printed harmless
            print(printable(f"{bundle.file}\t{bundle.bytes}\t{bundle.sha256}\t{','.join(bundle.targets)}"))
        return 0
    try:
        report = pull(args.source, args.dest, selection, retries=args.retries, timeout=args.timeout,
                      cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        print("sdk-build: interrupted; the partial download is kept (.NAME.partial): run the same pull to resume",
              file=sys.stderr)
        return 130
    for result in report.results:
        rate = result.transferred / 1e6 / result.seconds if result.transferred and result.seconds else 0.0
        print(printable(f"{result.path}\t{result.status}\t{result.transferred} bytes transferred\t{result.seconds:.1f} s")
              + (f"\t{rate:.1f} MB/s" if rate else "") + ("\t(replaced a corrupt copy)" if result.replaced_bad_file else ""))
    for name, message in report.failures:
        _print_error(message)
    print(printable(f"{len(report.results)} of {len(report.selected)} bundles in {args.dest}, "
                    f"{report.transferred} bytes transferred (catalog: {report.catalog})"))
    return 1 if report.failures else 0


def run_make_tiny(args: argparse.Namespace) -> int:
    from sdk_build.tiny_checkpoint import make_tiny_checkpoint

    print(make_tiny_checkpoint(args.directory, seed=args.seed))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    handlers = {
        "build": run_build, "verify": run_verify, "build-defaults": run_build_defaults, "matrix": run_matrix,
        "make-tiny": run_make_tiny, "catalog": run_catalog, "pull": run_pull,
    }
    try:
        return handlers[args.command](args)
    except BuildError as exc:
        _print_error(str(exc), exc.details)
        return 2
    except KeyboardInterrupt:
        print("sdk-build: interrupted; no partial bundle was left under a final name", file=sys.stderr)
        return 130
    except Exception as exc:  # a file-system failure from anywhere (ours, a converter's): one line, not a traceback
        found = find_os_error(exc)
        if found is None:
            raise
        _print_error(os_error_message(found))
        return 2


def _print_error(message: str, details: str = "") -> None:
    """The one line a failure prints (text from outside made harmless: sdk_build.terminal), then any details."""
    print(f"sdk-build: error: {printable(message)}", file=sys.stderr)
    for line in details.splitlines():
        print(f"  {printable(line)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
