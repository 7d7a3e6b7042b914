"""Turn a checkpoint reference into a validated `Checkpoint`."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from sdk_build.architecture import KNOWN_SHAPES, identify, read_config, shape_from_hf_config
from sdk_build.errors import SourceError
from sdk_build.sources.checkpoint import Checkpoint, default_cache_dir, fingerprint_files

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
        return _from_directory(ref, _hub_download(ref, cache), allow_custom_shape)
    path = Path(ref).expanduser()
    if not path.exists():
        raise SourceError(
            f"checkpoint {ref!r} is not a folder, nor embedded:/random:/hf: reference; check the path "
            f"(default: {DEFAULT_CHECKPOINT})"
        )
    if not path.is_dir():
        raise SourceError(f"checkpoint {ref!r} is a file; point --checkpoint at the model's folder")
    return _from_directory(ref, path.resolve(), allow_custom_shape)


def _embedded(ref: str, cache: Path) -> Checkpoint:
    from sdk_build.atomic import check_free_space
    from sdk_build.progress import status
    from sdk_build.sources.embedded import materialize_embedded, package_version

    name = ref.split(":", 1)[1]
    version = package_version(name) if _installed(name) else "missing"
    target = cache / "checkpoints" / f"embedded-{name}-{version}-v{_LOADER_VERSION}"
    if not (target / "config.json").exists():
        check_free_space(cache, 2 * 2**30)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with status(f"unpacking {ref} (GGUF -> fp32 safetensors, tokenizer)"):
            materialize_embedded(name, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return _from_directory(ref, target, allow_custom_shape=False, instruction_tuned=False)


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
        fingerprint=fingerprint, random_seed=seed,
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
    ref: str, directory: Path, allow_custom_shape: bool, instruction_tuned: bool | None = None
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
    _check_safetensors(weights)
    name = (config.get("_name_or_path") or directory.name).lower()
    if instruction_tuned is None:
        instruction_tuned = _looks_instruction_tuned(directory, name)
    return Checkpoint(
        ref=ref, directory=directory, model=model, shape=shape, instruction_tuned=instruction_tuned,
        qat="qat" in name, fingerprint=fingerprint_files([directory / "config.json", tokenizer, *weights]),
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


def _check_safetensors(files: list[Path]) -> None:
    """Open every safetensors header now, so a truncated download fails here with its name."""
    from safetensors import safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except Exception as exc:
            raise SourceError(
                f"{file} is not a readable safetensors file ({exc}); re-download the checkpoint"
            ) from exc
