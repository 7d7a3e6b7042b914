"""How close decode runs to this machine's memory-bandwidth limit.

Decoding one token multiplies the whole model by one activation vector, so every weight is read from memory once per
token and almost nothing is written: tokens/s cannot exceed (bytes/s the cores can read) / (weight bytes read per
token). Two figures stand in for "bytes/s the cores can read", both measured here with as many threads as decode uses:

- copy bandwidth, STREAM's convention: bytes read + bytes written per second while copying a buffer much larger than
  the caches (what the issue asks for);
- read bandwidth: bytes read per second while reducing such a buffer (closer to what decode does).

Weight bytes read per token are counted from the files themselves, not from a parameter count:
- GGUF: every tensor's bytes; Gemma 3 ties the output layer to the embedding, so `token_embd` is read whole (the LM
  head) plus one row (the lookup);
- `.task`: the constant buffers the `decode` signature of its TFLite model uses; a buffer used only by an embedding
  lookup counts one row, one also used by a matmul (the tied LM head) counts whole.
The KV cache read per token is not included (it grows with position; litert-lm reads its whole `ekv` cache, llama.cpp
the filled part).
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import median

_LOOKUP_OPS = {"EMBEDDING_LOOKUP", "GATHER"}


@dataclasses.dataclass(frozen=True)
class Bandwidth:
    """Bytes/s this machine moved with `threads` threads (medians of `repeats` passes over `buffer_bytes`)."""

    copy_bytes_per_s: float
    read_bytes_per_s: float
    threads: int
    buffer_bytes: int
    repeats: int

    def better(self, other: Bandwidth) -> Bandwidth:
        """The higher of two measurements, figure by figure: other load on the machine only ever lowers bandwidth,
        so of a measurement before and one after a benchmark the better one is the nearer to what the cores can do."""
        return dataclasses.replace(self, copy_bytes_per_s=max(self.copy_bytes_per_s, other.copy_bytes_per_s),
                                   read_bytes_per_s=max(self.read_bytes_per_s, other.read_bytes_per_s))

    def to_dict(self) -> dict[str, float | int]:
        return {
            "copy_GBps_read_plus_write": self.copy_bytes_per_s / 1e9,
            "read_GBps": self.read_bytes_per_s / 1e9,
            "threads": self.threads,
            "buffer_bytes": self.buffer_bytes,
            "repeats": self.repeats,
        }


def measure_bandwidth(threads: int = 2, buffer_bytes: int = 512 * 2**20, repeats: int = 7) -> Bandwidth:
    """Copy and read bandwidth with `threads` threads, each on its own slice (numpy releases the GIL in both)."""
    source = np.ones(buffer_bytes // 8, dtype=np.float64)  # ones: every page really allocated, no zero-page tricks
    target = np.zeros_like(source)
    target[:] = 2.0  # touch the target once so the timed copies do not count page faults
    slices = [(s[0], s[-1] + 1) for s in np.array_split(np.arange(source.size), threads)]

    def copy(bounds: tuple[int, int]) -> None:
        np.copyto(target[bounds[0] : bounds[1]], source[bounds[0] : bounds[1]])

    def read(bounds: tuple[int, int]) -> None:
        source[bounds[0] : bounds[1]].sum()  # pairwise sum: vectorised, cheap next to a DRAM read

    with ThreadPoolExecutor(threads) as pool:
        copy_s = _timed(pool, copy, slices, repeats)
        read_s = _timed(pool, read, slices, repeats)
    return Bandwidth(2 * source.nbytes / copy_s, source.nbytes / read_s, threads, source.nbytes, repeats)


def _timed(pool: ThreadPoolExecutor, work: Callable[[tuple[int, int]], None], slices, repeats: int) -> float:
    list(pool.map(work, slices))  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        list(pool.map(work, slices))
        samples.append(time.perf_counter() - started)
    return median(samples)


def decode_limit(bytes_per_s: float, bytes_per_token: int) -> float:
    """Tokens/s if decode did nothing but read its weights once per token at `bytes_per_s`."""
    return bytes_per_s / bytes_per_token


def gguf_bytes_per_token(path: Path) -> int:
    """Weight bytes llama.cpp reads to decode one token from a Gemma 3 GGUF (tied embedding: whole + one row)."""
    import gguf

    reader = gguf.GGUFReader(path)
    total, has_output, embedding_row = 0, False, 0
    for tensor in reader.tensors:
        total += int(tensor.n_bytes)
        if tensor.name == "output.weight":
            has_output = True
        if tensor.name == "token_embd.weight":
            embedding_row = int(tensor.n_bytes) // int(tensor.shape[-1])  # shape is (ne0 = hidden, ne1 = vocab)
    # With a separate output matrix the embedding is only looked up: count one row of it instead of all of it.
    if has_output:
        embedding = next(int(t.n_bytes) for t in reader.tensors if t.name == "token_embd.weight")
        total -= embedding
    return total + embedding_row


def task_tflite_view(task: Path) -> tuple[mmap.mmap, int, int]:
    """(mapping of the .task, offset, size) of its TFLite model, which the bundler stores uncompressed."""
    with zipfile.ZipFile(task) as archive:
        info = archive.getinfo("TF_LITE_PREFILL_DECODE")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{task.name}: TF_LITE_PREFILL_DECODE is compressed; cannot map it")
    with open(task, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    name_len, extra_len = struct.unpack_from("<HH", mapping, info.header_offset + 26)
    return mapping, info.header_offset + 30 + name_len + extra_len, info.file_size


def task_bytes_per_token(task: Path, signature: str = "decode") -> int:
    """Constant bytes the `signature` subgraph of a .task's TFLite model reads per call (see the module doc)."""
    mapping, offset, size = task_tflite_view(task)
    try:
        return tflite_bytes_per_token(memoryview(mapping)[offset : offset + size], signature)
    finally:
        mapping.close()


def tflite_bytes_per_token(model_bytes, signature: str = "decode") -> int:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    opcodes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graphs = [model.Subgraphs(i) for i in range(model.SubgraphsLength())]
    graph = next((g for g in graphs if (g.Name() or b"").decode() == signature), None)
    if graph is None:
        raise ValueError(f"the TFLite model has no {signature!r} subgraph; found {[g.Name() for g in graphs][:6]}")
    consumers: dict[int, set[str]] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = opcodes[op.OpcodeIndex()]
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        for j in range(op.InputsLength()):
            consumers.setdefault(op.Inputs(j), set()).add(name)
    per_buffer: dict[int, int] = {}
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() else None
        size = (buffer.DataLength() or int(buffer.Size())) if buffer is not None else 0
        if not size:
            continue
        users = consumers.get(index, set())
        if users and users <= _LOOKUP_OPS and tensor.ShapeLength() == 2:
            size //= tensor.Shape(0)  # a lookup reads one row of the table
        per_buffer[tensor.Buffer()] = max(per_buffer.get(tensor.Buffer(), 0), size)
    return sum(per_buffer.values())
