"""Everything a build can check in seconds, checked before the export that takes minutes.

Why: the float export runs litert-torch in a child process for minutes; an input it cannot use (a tokenizer that
is not a SentencePiece model, a config with no layers, an ekv beyond the model's context, weights of the wrong
shape, a full disk, an output path that is a file) used to fail inside it, as a traceback excerpt, after that
time was spent. Each check here raises a `BuildError` subclass naming the file or flag and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdk_build.convert.bundle import START_TOKEN, STOP_TOKENS
from sdk_build.errors import BuildError, SourceError, SpecError, os_error_message
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import VariantSpec


def check_writable_folder(folder: Path, flag: str) -> None:
    """`folder` is (or can be made) a folder this process can write into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BuildError(f"{flag} {folder} is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(os_error_message(exc, f"cannot create {flag}")) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only(folder) else "is not writable by this user"
        raise BuildError(f"{flag} {folder} {reason}; choose a folder you can write to")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_tokenizer(checkpoint: Checkpoint) -> None:
    """tokenizer.model loads as SentencePiece, fits the embedding, and has the tokens the bundles name."""
    import sentencepiece as spm

    path = checkpoint.tokenizer_path
    try:
        processor = spm.SentencePieceProcessor(model_file=str(path))
    except Exception as exc:  # noqa: BLE001 - sentencepiece raises RuntimeError/OSError with C++ text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(
            f"{path} is not a SentencePiece model ({first[:160]}); copy tokenizer.model from the original "
            "Hugging Face repository"
        ) from None
    size = processor.vocab_size()
    if size > checkpoint.shape.vocab_size:
        raise SourceError(
            f"{path} has {size} tokens but config.json's vocab_size is {checkpoint.shape.vocab_size}: ids would "
            "fall outside the embedding; tokenizer and weights come from different models"
        )
    missing = [t for t in (START_TOKEN, *STOP_TOKENS) if processor.id_to_piece(processor.piece_to_id(t)) != t]
    if missing:
        raise SourceError(f"{path} lacks the tokens {missing} Gemma 3 bundles start and stop with; is it Gemma's?")


def check_variant_fits(checkpoint: Checkpoint, variant: VariantSpec) -> None:
    """The KV cache the variant asks for is within the context the model was made for."""
    context = checkpoint.shape.max_position_embeddings
    if variant.ekv > context:
        raise SpecError(
            f"--ekv {variant.ekv} exceeds the model's context of {context} tokens (config.json "
            f"max_position_embeddings); choose at most {context}"
        )


def check_weights(checkpoint: Checkpoint) -> None:
    """Every tensor the export reads is present with the shape config.json implies (safetensors headers only)."""
    if checkpoint.random_seed is not None:
        return  # random: weights are generated in the shape itself
    from sdk_build.convert.model_loader import check_tensor_names

    try:
        check_tensor_names(checkpoint)
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors' own errors for a damaged header
        raise SourceError(f"cannot read the weights in {checkpoint.directory} ({exc}); re-download them") from None


def check_build_inputs(checkpoint: Checkpoint, variant: VariantSpec) -> None:
    """All checks of the checkpoint and the variant (the folders and disk space are checked by the pipeline)."""
    check_variant_fits(checkpoint, variant)
    check_tokenizer(checkpoint)
    check_weights(checkpoint)
