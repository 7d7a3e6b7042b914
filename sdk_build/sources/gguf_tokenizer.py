"""Rebuild Gemma 3's SentencePiece `tokenizer.model` from the vocabulary stored in a GGUF file.

llama.cpp keeps every piece, score and piece type of the original SentencePiece model in the GGUF metadata,
so the original model can be written back exactly (BPE, byte fallback, split digits, identity normalizer,
no dummy prefix; pad/eos/bos/unk = 0/1/2/3). The bundlers need the SentencePiece file, not the GGUF.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sdk_build.errors import SourceError

TEXT_PARSED_MARKERS = frozenset({"<start_of_turn>", "<end_of_turn>"})


def _field(reader, key: str):  # gguf.GGUFReader -> value
    field = reader.fields.get(key)
    if field is None:
        raise SourceError(f"the GGUF file lacks {key!r}; it does not carry a SentencePiece vocabulary")
    return field


def sentencepiece_from_gguf(reader, output: Path) -> Path:
    """Write `output` (a SentencePiece ModelProto) from `reader`'s tokenizer.ggml.* metadata."""
    if _field(reader, "tokenizer.ggml.model").contents() != "llama":
        raise SourceError("the GGUF tokenizer is not a SentencePiece ('llama') vocabulary")
    tokens = _field(reader, "tokenizer.ggml.tokens").contents()
    scores = _field(reader, "tokenizer.ggml.scores").contents()
    types = _field(reader, "tokenizer.ggml.token_type").contents()
    if not (len(tokens) == len(scores) == len(types)):
        raise SourceError("GGUF tokenizer arrays have different lengths; the file is corrupt")

    def special(key: str, default: int) -> int:
        field = reader.fields.get(key)
        return int(field.contents()) if field is not None else default

    ids = SpecialIds(
        pad=special("tokenizer.ggml.padding_token_id", 0), eos=special("tokenizer.ggml.eos_token_id", 1),
        bos=special("tokenizer.ggml.bos_token_id", 2), unk=special("tokenizer.ggml.unknown_token_id", 3),
    )
    # GGUF token types use SentencePiece's numbering: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
    # 6 byte.
    return write_sentencepiece(tokens, [float(x) for x in scores], [int(t) for t in types], ids, output)


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    pad: int
    eos: int
    bos: int
    unk: int


def write_sentencepiece(
    tokens: Sequence[str], scores: Sequence[float], types: Sequence[int], ids: SpecialIds, output: Path
) -> Path:
    """Write Gemma's SentencePiece model (BPE, byte fallback, split digits, identity normalizer, no dummy prefix)
    with these pieces, scores and piece types (SentencePiece's numbering) to `output`."""
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    if max(ids.pad, ids.eos, ids.bos, ids.unk) >= len(tokens):
        raise SourceError(f"the tokenizer's special token ids {ids} lie outside its {len(tokens)} pieces")
    model = sp_pb2.ModelProto()
    for index, (piece, score, kind) in enumerate(zip(tokens, scores, types)):
        entry = model.pieces.add()
        entry.piece = piece
        entry.score = float(score)
        entry.type = int(kind)
        if index == ids.unk:
            entry.type = sp_pb2.ModelProto.SentencePiece.UNKNOWN
        elif piece in TEXT_PARSED_MARKERS:
            # llama.cpp marks the chat-turn markers CONTROL (from Hugging Face's "special" flag); in Gemma's own
            # SentencePiece model they are user-defined, so "<start_of_turn>" in a prompt becomes one token.
            # MediaPipe's and LiteRT-LM's prompt templates depend on that.
            entry.type = sp_pb2.ModelProto.SentencePiece.USER_DEFINED
    trainer = model.trainer_spec
    trainer.model_type = sp_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(tokens)
    trainer.byte_fallback = True
    trainer.split_digits = True
    trainer.pad_id, trainer.eos_id, trainer.bos_id, trainer.unk_id = ids.pad, ids.eos, ids.bos, ids.unk
    trainer.pad_piece, trainer.eos_piece = tokens[ids.pad], tokens[ids.eos]
    trainer.bos_piece, trainer.unk_piece = tokens[ids.bos], tokens[ids.unk]
    trainer.split_by_whitespace = False
    trainer.allow_whitespace_only_pieces = True
    trainer.treat_whitespace_as_suffix = False
    norm = model.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = False
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    output.write_bytes(model.SerializeToString())
    return output
