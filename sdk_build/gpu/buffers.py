"""The largest tensors of a bundle's model: what a GPU engine must fit into single buffers.

A GPU engine (LiteRT's ml_drift over WebGPU/Vulkan, MediaPipe's web runtime) uploads every weight tensor as one
storage buffer and allocates one per intermediate tensor. An adapter whose `maxStorageBufferRange` (WebGPU:
`maxStorageBufferBindingSize`) is smaller than one of them cannot run the bundle at all; WebGPU's default, and what
many phone browsers report, is 128 MiB. Gemma 3's tied embedding / LM head table (262144 rows) is the tensor that
exceeds it (`sdk_build.gpu.layout` splits it). This module reads sizes from the flatbuffer alone, without
loading a runtime, so a build can record them and `verify` / the lab can refuse a bundle for an adapter up front.
"""

from __future__ import annotations

import dataclasses
import struct
import zipfile
from pathlib import Path

TASK_MODEL_MEMBER = "TF_LITE_PREFILL_DECODE"
LITERTLM_MAGIC = b"LITERTLM"
_LITERTLM_HEADER_END_OFFSET, _LITERTLM_HEADER_BEGIN = 24, 32
_DECODER_MODEL_TYPES = ("tf_lite_prefill_decode", "prefill_decode")

# TensorType -> bits per element (tflite schema order); int4 packs two values per byte.
_BITS = {0: 32, 1: 16, 2: 32, 3: 8, 4: 64, 6: 8, 7: 16, 9: 8, 10: 64, 16: 32, 17: 4, 18: 16}
DTYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
                10: "float64", 16: "uint32", 17: "int4", 18: "bfloat16"}


@dataclasses.dataclass(frozen=True)
class TensorSize:
    name: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int
    constant: bool
    """A weight (stored in the file) rather than an activation, KV cache or input."""

    def describe(self) -> str:
        kind = "weight" if self.constant else "tensor"
        return f"{kind} {self.name} {list(self.shape)} {self.dtype}: {self.bytes:,} bytes ({self.bytes / 2**20:,.1f} MiB)"

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict) -> TensorSize:
        return cls(str(data["name"]), tuple(int(n) for n in data["shape"]), str(data["dtype"]), int(data["bytes"]),
                   bool(data["constant"]))


def _litertlm_decoder_span(path: Path) -> tuple[int, int]:
    """(offset, length) of the prefill/decode TFLite section of a `.litertlm` file."""
    from litert_lm_builder import litertlm_header_schema_py_generated as schema

    with open(path, "rb") as handle:
        if handle.read(8) != LITERTLM_MAGIC:
            raise ValueError(f"{path.name} is not a .litertlm file (bad magic number)")
        handle.seek(_LITERTLM_HEADER_END_OFFSET)
        header_end = struct.unpack("<Q", handle.read(8))[0]
        handle.seek(_LITERTLM_HEADER_BEGIN)
        header = schema.LiteRTLMMetaData.GetRootAs(handle.read(header_end - _LITERTLM_HEADER_BEGIN), 0)
    sections = header.SectionMetadata()
    candidates = []
    for i in range(sections.ObjectsLength() if sections else 0):
        section = sections.Objects(i)
        if section.DataType() != schema.AnySectionDataType.TFLiteModel:
            continue
        model_type = ""
        for j in range(section.ItemsLength()):
            item = section.Items(j)
            if item.Key() == b"model_type" and item.ValueType() == schema.VData.StringValue:
                value = schema.StringValue()
                value.Init(item.Value().Bytes, item.Value().Pos)
                model_type = (value.Value() or b"").decode()
        candidates.append((model_type, section.BeginOffset(), section.EndOffset()))
    for model_type, begin, end in candidates:
        if model_type in _DECODER_MODEL_TYPES or len(candidates) == 1:
            return begin, end - begin
    raise ValueError(f"{path.name} holds no prefill/decode TFLite model section")


def _litertlm_decoder(path: Path) -> bytes:
    begin, length = _litertlm_decoder_span(path)
    with open(path, "rb") as handle:
        handle.seek(begin)
        return handle.read(length)


def model_bytes(bundle: Path) -> bytes:
    """The decoder `.tflite` inside a `.task` (a zip after 4 zero bytes) or a `.litertlm`, or a `.tflite` itself."""
    bundle = Path(bundle)
    if bundle.suffix == ".task":
        with zipfile.ZipFile(bundle) as archive:
            return archive.read(TASK_MODEL_MEMBER)
    if bundle.suffix == ".litertlm":
        return _litertlm_decoder(bundle)
    return bundle.read_bytes()


def tensor_sizes(model: bytes) -> list[TensorSize]:
    """Every distinct tensor of every subgraph, largest first (a weight shared by several signatures once)."""
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAsModel(model, 0)
    seen: dict[tuple, TensorSize] = {}
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            shape = tuple(int(n) for n in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            buffer = root.Buffers(tensor.Buffer()) if tensor.Buffer() else None
            stored = (buffer.DataLength() or int(buffer.Size())) if buffer else 0
            count = 1
            for n in shape:
                count *= max(n, 1)
            computed = (count * _BITS.get(tensor.Type(), 32) + 7) // 8
            name = (tensor.Name() or b"").decode(errors="replace")
            size = TensorSize(name, shape, DTYPE_NAMES.get(tensor.Type(), str(tensor.Type())), stored or computed,
                              constant=bool(stored))
            key = ("buffer", tensor.Buffer()) if stored else ("tensor", s, t)
            if key not in seen or seen[key].bytes < size.bytes:
                seen[key] = size
    return sorted(seen.values(), key=lambda size: -size.bytes)


def largest_tensors(bundle: Path, count: int = 5) -> list[TensorSize]:
    return tensor_sizes(model_bytes(bundle))[:count]


def over_limit(tensors: list[TensorSize], limit_bytes: int) -> list[TensorSize]:
    """The tensors that cannot be one buffer on an adapter whose storage-buffer limit is `limit_bytes`."""
    return [t for t in tensors if t.bytes > limit_bytes]
