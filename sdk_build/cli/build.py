"""`sdk-build build`: one variant (.task and/or .litertlm) into an output folder (`sdk_build.compose.build`)."""

from __future__ import annotations

import argparse

from sdk_build.cli import options
from sdk_build.cli.help import COMMAND_HELP
from sdk_build.sources.resolve import DEFAULT_CHECKPOINT


def register(commands: argparse._SubParsersAction) -> None:
    from sdk_build.spec import BundleFormat, Recipe, Target

    build = commands.add_parser("build", help=COMMAND_HELP["build"])
    build.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help="embedded:gemma3-270m (default), a local HF or MLX folder, FILE.gguf, hf:ORG/NAME[@REV], "
                       "modelscope:ORG/NAME[@REV], random:gemma3-1b")
    build.add_argument("--recipe", required=True, choices=[*(r.value for r in Recipe), "int4"], metavar="RECIPE",
                       help="one of: " + ", ".join(r.value for r in Recipe)
                       + "; or int4: the target's default int4 recipe (README \"Recipes\")")
    build.add_argument("--ekv", type=options.positive_int, required=True, help="KV cache size in tokens")
    build.add_argument("--prefill", type=options.positive_int, action="append",
                       help="prefill signature length (repeatable; default: those of 32 128 512 1280 that fit --ekv)")
    build.add_argument("--format", action="append", choices=[f.value for f in BundleFormat],
                       help="bundle format (repeatable; default task)")
    build.add_argument("--target", default=Target.ANDROID_CPU.value, choices=[t.value for t in Target],
                       help="device family the variant is for (default android-cpu); GPU targets get the GPU layout")
    options.add_output_folder(build)
    build.add_argument("--name", help="output file stem (default: the naming of Google's litert-community/Gemma3-1B-IT files)")
    build.add_argument("--gpu-buffer-limit", type=options.byte_size, default=None, metavar="BYTES",
                       help="largest GPU buffer a weight may need, e.g. 128MiB or 256MB (default: 128MiB for GPU "
                            "targets, none for CPU targets; 0: none): sets the GPU layout (sdk_build/gpu/layout.py)")
    build.add_argument("--force", action="store_true", help="rebuild even if an identical bundle exists")
    options.add_allow_custom_shape(build)
    options.add_kv_cache(build)
    options.add_lora(build)
    options.add_cache_dir(build)
    build.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sdk_build.compose import build
    from sdk_build.spec import make_variant

    variant = make_variant(
        args.recipe, args.ekv, args.prefill, formats=args.format or ["task"], target=args.target, output_name=args.name,
        gpu_buffer_limit=args.gpu_buffer_limit,
    )
    outcome = build(
        args.checkpoint, variant, args.output, cache_dir=args.cache_dir, allow_custom_shape=args.allow_custom_shape,
        force=args.force, lora=options.lora_spec(args), export_options=options.export_options(args),
    )
    for entry in outcome.entries:
        print(f"{args.output / entry.file}\t{entry.bytes}\t{entry.sha256}")
    adapter_file = getattr(outcome, "adapter_file", None)
    if adapter_file is not None:
        print(f"{adapter_file}\t{adapter_file.stat().st_size}\tadapter")
    return 0
