"""Runtime LoRA: litert-torch `LoRA` weights from a PEFT adapter, and the adapter file the runtimes load.

litert-torch's converter adds `prefill_N_lora_rR` / `decode_lora_rR` signatures when given `lora_ranks`, feeding a
`LoRA` pytree to the model's forward (`sdk_build.lora.litert_decoder.LoraDecoder` threads it through Gemma 3).

The adapter file is litert-torch's own `LoRA.to_tflite()` flatbuffer: tensors `lora_atten_{q,k,v,o}_{a,b}_prime_
weight_N` plus a `lora_rank` metadata entry. Those are the names LiteRT-LM (`session lora_path`) and MediaPipe's
LLM Inference (`loadLoraModel`) look for in a LoRA file for a converted model's LoRA signatures. litert-torch's LoRA
is attention-only (q/k/v/o, all four in every layer): projections the adapter leaves out are zero-filled, and MLP
adapters can only be fused.
"""

from __future__ import annotations

from pathlib import Path

from sdk_build.architecture import ModelShape
from sdk_build.errors import AdapterError
from sdk_build.lora.adapter import ATTENTION_MODULES, MLP_MODULES, LoraAdapter, module_dims
from sdk_build.spec import Target
from sdk_build.system.atomic import atomic_path

_FIELDS = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "o_proj": "output"}
LITERT_LM_RANKS = (16, 32)
"""LoRA ranks LiteRT-LM 0.18.1 accepts ("Currently only support rank 16 and 32"); smaller adapters are zero-padded."""


def runtime_rank(rank: int) -> int:
    """The model's LoRA input rank for an adapter of `rank`: the smallest rank LiteRT-LM accepts that holds it."""
    for supported in LITERT_LM_RANKS:
        if rank <= supported:
            return supported
    raise AdapterError(
        f"runtime LoRA in LiteRT-LM supports ranks up to {LITERT_LM_RANKS[-1]}, this adapter has "
        f"r={rank}: use --lora-mode fused (any rank), or retrain with r <= {LITERT_LM_RANKS[-1]}"
    )


RUNTIME_LORA_TARGETS: dict[Target, str] = {
    Target.ANDROID_CPU: "LiteRT-LM on the CPU (Engine lora_rank + session lora_path), as verified on this host",
}
"""Targets whose runtime loads a separate adapter for these bundles, and how."""
NO_RUNTIME_LORA: dict[Target, str] = {
    Target.WEB_GPU: 'MediaPipe tasks-genai 0.10.29 refuses LoRA for converted .task models ("LoRA is not supported '
    'for converted LLM models (.task format) yet"); it loads adapters only for its own .bin GPU '
    "models, which its converter cannot make for Gemma 3",
    Target.IOS: "MediaPipe's iOS LLM Inference runs the same converted .task as the web API, whose LoRA support "
    "covers MediaPipe's .bin GPU models only",
    Target.ANDROID_GPU: "LiteRT-LM's GPU LoRA path could not be run or verified here (no GPU); fused adapters cost "
    "nothing at run time",
}


def check_runtime_target(target: Target) -> None:
    """Refuse a runtime-LoRA bundle for a target whose runtime cannot load the adapter file."""
    if target not in RUNTIME_LORA_TARGETS:
        supported = ", ".join(t.value for t in RUNTIME_LORA_TARGETS)
        raise AdapterError(
            f"runtime LoRA is not available for {target.value}: {NO_RUNTIME_LORA[target]}; use "
            f"--lora-mode fused, or a target with runtime LoRA ({supported})"
        )


def check_runtime_supported(adapter: LoraAdapter, shape: ModelShape) -> None:
    """Refuse adapters the runtime LoRA path cannot carry, saying to fuse them instead."""
    mlp = [m for m in adapter.modules if m in MLP_MODULES]
    if mlp:
        raise AdapterError(
            f"{adapter.directory}: runtime LoRA (litert-torch, LiteRT-LM, MediaPipe) covers the attention projections "
            f"q/k/v/o_proj only, and this adapter also targets {', '.join(mlp)}; build it with --lora-mode fused"
        )
    if shape.num_kv_heads != 1:
        raise AdapterError(
            "runtime LoRA in litert-torch 0.10.0 sizes k/v adapters for one KV head; this model has "
            f"{shape.num_kv_heads}: use --lora-mode fused"
        )


def to_litert_lora(adapter: LoraAdapter, shape: ModelShape):
    """litert-torch's `LoRA` for `adapter`: A' = scale * A^T (in, r), B' = B^T (r, out); absent pairs are zeros."""
    import torch
    from litert_torch.generative.layers import lora as lora_utils

    check_runtime_supported(adapter, shape)
    entries = []
    for layer in range(shape.num_layers):
        weights = {}
        for module in ATTENTION_MODULES:
            fan_in, fan_out = module_dims(shape, module)
            if (layer, module) in adapter.pairs:
                a, b = adapter.pairs[(layer, module)]
                a_prime, b_prime = (a.T * adapter.scale).contiguous(), b.T.contiguous()
            else:
                a_prime, b_prime = torch.zeros(fan_in, adapter.rank), torch.zeros(adapter.rank, fan_out)
            weights[_FIELDS[module]] = lora_utils.LoRAWeight(a_prime=a_prime, b_prime=b_prime)
        entries.append(lora_utils.LoRAEntry(attention=lora_utils.AttentionLoRA(**weights)))
    return lora_utils.LoRA(adapters=tuple(entries))


def write_adapter_file(adapter: LoraAdapter, shape: ModelShape, destination: Path, rank: int | None = None) -> Path:
    """Write the runtime adapter file atomically: litert-torch's LoRA tensors (fp32), zero-padded to `rank`.

    Layout: a TFLite flatbuffer whose buffers point (offset, size) at tensor data appended after it, the layout
    LiteRT-LM's LoRA reader (`runtime/util/lora_data.cc`) maps; litert-torch's own `LoRA.to_tflite()` stores the
    data inside the flatbuffer, which that reader takes for one tensor spanning the whole file.
    """
    lora = pad_rank(to_litert_lora(adapter, shape), rank or adapter.rank)
    with atomic_path(destination) as tmp:
        tmp.write_bytes(_external_buffer_flatbuffer(lora))
    return destination


def pad_rank(lora, rank: int):
    """The same LoRA with A' and B' zero-padded to `rank`: x @ A' @ B' is unchanged, the model's rank is met."""
    import torch
    from litert_torch.generative.layers import lora as lora_utils

    current = lora.get_rank()
    if rank == current:
        return lora
    if rank < current:
        raise AdapterError(f"cannot pad a rank-{current} adapter down to rank {rank}")

    def pad(weight):
        a = torch.nn.functional.pad(weight.a_prime, (0, rank - current))
        b = torch.nn.functional.pad(weight.b_prime, (0, 0, 0, rank - current))
        return lora_utils.LoRAWeight(a_prime=a, b_prime=b)

    entries = []
    for entry in lora.adapters:
        attn = entry.attention
        entries.append(
            lora_utils.LoRAEntry(
                attention=lora_utils.AttentionLoRA(
                    query=pad(attn.query), key=pad(attn.key), value=pad(attn.value), output=pad(attn.output)
                )
            )
        )
    return lora_utils.LoRA(adapters=tuple(entries))


_ALIGN = 64
_FILE_PAGE = 16384


def _external_buffer_flatbuffer(lora) -> bytes:
    """Serialize `lora` as a TFLite model whose buffers reference data stored after the flatbuffer."""
    import flatbuffers
    import numpy as np
    from litert_torch.generative.layers.lora import _flatten_lora
    from tensorflow.lite.python import schema_py_generated as schema_fb

    tensors, (names, _) = _flatten_lora(lora)
    arrays = [np.ascontiguousarray(t.detach().float().numpy()) for t in tensors]

    def build(data_start: int) -> tuple[bytes, list[int]]:
        offsets, position = [], data_start
        model = schema_fb.ModelT()
        model.version, model.description = 3, "lora_params"
        model.buffers = [schema_fb.BufferT()]  # buffer 0 is empty by convention
        subgraph = schema_fb.SubGraphT()
        subgraph.name, subgraph.tensors = "lora_params", []
        for index, (name, array) in enumerate(zip(names, arrays)):
            position = -(-position // _ALIGN) * _ALIGN
            buffer = schema_fb.BufferT()
            buffer.offset, buffer.size = position, array.nbytes
            model.buffers.append(buffer)
            offsets.append(position)
            position += array.nbytes
            tensor = schema_fb.TensorT()
            tensor.name, tensor.shape = f"lora_{name}", list(array.shape)
            tensor.type, tensor.buffer = schema_fb.TensorType.FLOAT32, index + 1
            subgraph.tensors.append(tensor)
        model.subgraphs = [subgraph]
        metadata = schema_fb.MetadataT()
        metadata.name, metadata.buffer = "lora_rank", lora.get_rank()  # the rank itself, as litert-torch writes it
        model.metadata = [metadata]
        builder = flatbuffers.Builder(4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output()), offsets

    head, _ = build(_ALIGN)  # every offset is non-zero and 8 bytes wide, so the size does not depend on them
    start = -(-len(head) // _ALIGN) * _ALIGN
    head, offsets = build(start)
    if len(head) > start:
        raise AssertionError("LoRA flatbuffer grew when its offsets were filled in")
    out = bytearray(head)
    for offset, array in zip(offsets, arrays):
        out.extend(b"\0" * (offset - len(out)))
        out.extend(array.tobytes())
    # LiteRT-LM memory-maps each tensor page-aligned and refuses a map that runs past the end of the file:
    # pad the file to a whole number of pages (16 KiB covers 4 KiB and 16 KiB page systems).
    out.extend(b"\0" * (-len(out) % _FILE_PAGE))
    return bytes(out)


def read_adapter_rank(path: Path) -> int:
    """The `lora_rank` a runtime adapter file declares (what LiteRT-LM and MediaPipe check against the model)."""
    from tensorflow.lite.python import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() == b"lora_rank":
            return int(entry.Buffer())
    raise AdapterError(f"{path} has no lora_rank metadata: it is not a runtime LoRA adapter file")
