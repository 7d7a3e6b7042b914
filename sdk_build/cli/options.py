"""Argument types and the option groups several commands share: one name and one help text per concept.

The vocabulary (tests/test_cli.py holds every command to it): `--output` is where a command writes (a folder of
bundles, or a file), `--bundles` a folder of bundles it reads, `--recipe` a quantization recipe, `--target` a device
family (repeatable where a command takes several), `--json` prints JSON on stdout instead of text, `--report PATH`
also writes the machine-readable table to a file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdk_build.convert.export import ExportOptions
    from sdk_build.lora.spec import LoraSpec

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return number


def byte_size(value: str) -> int:
    """A byte count such as 134217728, 128MiB or 256MB (0 allowed: "none")."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size; write e.g. 134217728, 128MiB or 256MB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def executor(value: str) -> str:
    """`--executor`: local, ray or ray://HOST:PORT (`sdk_build.executors.check_executor` says which forms)."""
    from sdk_build.errors import SpecError
    from sdk_build.executors import check_executor

    try:
        return check_executor(value)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache for checkpoints and float exports "
                        "(default $GEMMA_EDGE_CACHE or ~/.cache/gemma-edge)")


def add_output_folder(parser: argparse.ArgumentParser, *aliases: str) -> None:
    parser.add_argument("--output", *aliases, dest="output", type=Path, default=Path("bundles"),
                        help="folder the bundles and manifest.json go into (default bundles/)"
                        + (f"; {', '.join(aliases)}: its older name" if aliases else ""))


def add_allow_custom_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-custom-shape", action="store_true",
                        help="accept Gemma-3-shaped models other than 270M/1B (tiny test models)")


def add_lora(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lora", type=existing_path, default=None, metavar="PEFT_DIR",
                        help="apply this LoRA adapter (Hugging Face PEFT folder: adapter_config.json + "
                        "adapter_model.safetensors)")
    parser.add_argument("--lora-mode", choices=["fused", "runtime"], default=None,
                        help="fused (default): merge W + (alpha/r)*B@A before conversion, no run-time cost; "
                        "runtime: LoRA-input signatures + a separate adapter file (LiteRT-LM CPU; "
                        "see docs/adapters.md)")


def add_kv_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kv-cache", choices=["window", "full"], default=None,
                        help="window: sliding-window layers keep 512-token ring caches; full: every layer keeps ekv "
                        "tokens (default: window for files only android-cpu uses, where the estimate says it saves memory; "
                        "see README 'KV cache and the sliding window')")


def export_options(args: argparse.Namespace) -> ExportOptions | None:
    from sdk_build.convert.export import ExportOptions

    return None if args.kv_cache is None else ExportOptions(window_kv_cache=args.kv_cache == "window")


def window_kv_cache(args: argparse.Namespace) -> bool | None:
    return None if args.kv_cache is None else args.kv_cache == "window"


def lora_spec(args: argparse.Namespace) -> LoraSpec | None:
    from sdk_build.errors import AdapterError
    from sdk_build.lora.spec import make_lora_spec

    if args.lora is None:
        if args.lora_mode is not None:
            raise AdapterError("--lora-mode needs --lora PEFT_DIR (the adapter to apply)")
        return None
    return make_lora_spec(args.lora, args.lora_mode or "fused")
