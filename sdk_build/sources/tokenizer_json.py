"""Rebuild Gemma's SentencePiece `tokenizer.model` from a Hugging Face `tokenizer.json` (tokenizers' BPE).

The bundlers need SentencePiece's file, and folders written with transformers 5 (what `mlx_lm.convert` saves,
for one) hold only `tokenizer.json`. Gemma's `tokenizer.json` is itself a conversion of the SentencePiece model:
the same pieces under the same ids, byte-fallback pieces `<0x00>`..`<0xFF>`, and a merge list made from every
pair of pieces whose concatenation is a piece, ordered by that piece's score. So the SentencePiece model comes
back with the same pieces, ids and types, and a score per piece that orders merges as the list does
(the lower a piece's first merge rank, the higher its score): SentencePiece's BPE then merges in the same order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sdk_build.errors import SourceError
from sdk_build.sources.gguf_tokenizer import SpecialIds, write_sentencepiece

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6
_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def _merge_pair(merge: object) -> tuple[str, str]:
    if isinstance(merge, str):
        left, _, right = merge.partition(" ")
        return left, right
    if isinstance(merge, list) and len(merge) == 2:
        return str(merge[0]), str(merge[1])
    raise SourceError(f"tokenizer.json has a merge {merge!r} that is neither 'a b' nor ['a', 'b']")


def sentencepiece_from_tokenizer_json(path: Path, output: Path, vocab_size: int | None = None) -> Path:
    """Write `output` (a SentencePiece ModelProto) equivalent to the BPE tokenizer in `path`.

    `vocab_size` (the model's embedding rows) drops tokens a library added past the model's vocabulary
    (transformers adds a `<mask>` to a tokenizer that lacks one): the model has no embedding for them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path} is not a readable tokenizer.json ({exc})") from exc
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise SourceError(
            f"{path} is not a SentencePiece-style BPE tokenizer with byte fallback (Gemma's); found "
            f"{model.get('type')!r}: copy tokenizer.model from the original model instead"
        )
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {str(t["content"]): t for t in data.get("added_tokens") or []}
    for content, token in added.items():
        vocab.setdefault(content, int(token["id"]))
    if vocab_size is not None:
        vocab = {piece: index for piece, index in vocab.items() if index < vocab_size}
    size = max(vocab.values()) + 1
    pieces: list[str | None] = [None] * size
    for piece, index in vocab.items():
        pieces[index] = piece
    holes = [i for i, p in enumerate(pieces) if p is None]
    if holes:
        raise SourceError(f"{path} leaves {len(holes)} token ids without a piece (e.g. {holes[:3]}); it is incomplete")

    first_rank: dict[str, int] = {}
    for rank, merge in enumerate(model.get("merges") or []):
        left, right = _merge_pair(merge)
        first_rank.setdefault(left + right, rank)
    unmerged = -float(len(first_rank) + 1)
    scores = [-float(first_rank[p]) if p in first_rank else unmerged for p in pieces]  # type: ignore[index]

    unk_piece = model.get("unk_token") or "<unk>"
    types = []
    for piece in pieces:
        assert piece is not None
        if piece == unk_piece:
            types.append(UNKNOWN)
        elif piece in added:
            types.append(CONTROL if added[piece].get("special") else USER_DEFINED)
        elif _BYTE_PIECE.match(piece):
            types.append(BYTE)
        else:
            types.append(NORMAL)
        if types[-1] != NORMAL:
            scores[len(types) - 1] = 0.0

    def special(piece: str) -> int:
        if piece not in vocab:
            raise SourceError(f"{path} has no {piece!r} token; it is not a Gemma tokenizer")
        return vocab[piece]

    ids = SpecialIds(pad=special("<pad>"), eos=special("<eos>"), bos=special("<bos>"), unk=special(unk_piece))
    return write_sentencepiece([str(p) for p in pieces], scores, types, ids, output)
