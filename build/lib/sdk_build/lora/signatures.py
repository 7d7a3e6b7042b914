"""Give a runtime-LoRA export the signature names LiteRT-LM binds LoRA weights to, editing the `.tflite` in place.

litert-torch's `convert_to_tflite(lora_ranks=[r])` writes the plain signatures (`prefill_N`, `decode`) plus copies
taking LoRA weights as inputs (`prefill_N_lora_rR`, `decode_lora_rR`). LiteRT-LM 0.18.1 only runs `prefill_N` and
`decode`, and binds an adapter's tensors to those signatures' inputs named `lora_atten_*`: with litert-torch's
layout it loads the adapter and silently ignores it (measured on the tiny model: output unchanged). So after the
export the plain signatures are dropped from the signature table and the LoRA ones take their names. Their
subgraphs stay in the file unreferenced (the weights are shared buffers, so they cost little).

The edit is made in place through a memory map (a 1B float export is 4 GB): each kept signature key is shortened
in place (a flatbuffer string is a length, the bytes and a NUL; a shorter length inside the same bytes is valid)
and the signature vector is compacted to the kept entries, recomputing their relative offsets.
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path

from sdk_build.errors import BuildError

_LORA_SUFFIX = re.compile(r"_lora_r(\d+)$")
# Field slots (vtable offsets) in the TFLite schema, as in tensorflow's schema_py_generated.py:
_MODEL_SIGNATURE_DEFS = 18  # Model.signature_defs
_SIGNATURE_KEY = 8  # SignatureDef.signature_key


def signature_keys(path: Path) -> list[str]:
    from tensorflow.lite.python import schema_py_generated as schema_fb

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        model = schema_fb.Model.GetRootAsModel(data, 0)
        return [model.SignatureDefs(i).SignatureKey().decode() for i in range(model.SignatureDefsLength())]


def promote_lora_signatures(path: Path) -> list[str]:
    """Keep only the `*_lora_rR` signatures of `path`, renamed without the suffix; return the new key list."""
    from tensorflow.lite.python import schema_py_generated as schema_fb

    with open(path, "r+b") as handle, mmap.mmap(handle.fileno(), 0) as data:
        model = schema_fb.Model.GetRootAsModel(data, 0)
        count = model.SignatureDefsLength()
        signatures = [model.SignatureDefs(i) for i in range(count)]
        keys = [s.SignatureKey().decode() for s in signatures]
        lora = [i for i, key in enumerate(keys) if _LORA_SUFFIX.search(key)]
        ranks = {_LORA_SUFFIX.search(keys[i]).group(1) for i in lora}  # type: ignore[union-attr]
        if not lora or len(ranks) != 1:
            raise BuildError(f"{path.name} has signatures {keys}: expected one LoRA rank (`*_lora_rR`) to promote")
        renamed = [_LORA_SUFFIX.sub("", keys[i]) for i in lora]
        if sorted(renamed) != sorted(k for k in keys if not _LORA_SUFFIX.search(k)):
            raise BuildError(f"{path.name}: LoRA signatures {renamed} do not mirror the plain ones {keys}")
        for index, name in zip(lora, renamed):
            _shorten_string(data, signatures[index], name)
        vector = model._tab.Vector(model._tab.Offset(_MODEL_SIGNATURE_DEFS))
        for slot, index in enumerate(lora):
            element = vector + 4 * slot
            struct.pack_into("<I", data, element, signatures[index]._tab.Pos - element)
        struct.pack_into("<I", data, vector - 4, len(lora))
        data.flush()
    return signature_keys(path)


def _shorten_string(data: mmap.mmap, signature, name: str) -> None:
    table = signature._tab
    field = table.Offset(_SIGNATURE_KEY)
    start = field + table.Pos
    start += struct.unpack_from("<I", data, start)[0]  # uoffset to the string
    length = struct.unpack_from("<I", data, start)[0]
    encoded = name.encode()
    if len(encoded) > length:
        raise BuildError(f"cannot rename signature to the longer {name!r} in place")
    struct.pack_into("<I", data, start, len(encoded))
    data[start + 4 : start + 4 + len(encoded) + 1] = encoded + b"\0"
