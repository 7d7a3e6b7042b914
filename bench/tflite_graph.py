"""The structure of a bundle's model, without its weight values: what decides its run-time cost.

Two models with the same structure (signatures, operators and their wiring, tensor names, shapes, types and
quantization layout, and weight buffer sizes) do the same work per token whatever their weight values: that is the
contention-free half of "a fused adapter costs nothing" (bench/lora_overhead.py measures the other half).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

TASK_MODEL_MEMBER = "TF_LITE_PREFILL_DECODE"


def model_bytes(bundle: Path) -> bytes:
    """The `.tflite` inside a `.task` (a zip after 4 zero bytes), or the file itself for a `.tflite`."""
    if bundle.suffix == ".task":
        with zipfile.ZipFile(bundle) as archive:
            return archive.read(TASK_MODEL_MEMBER)
    return bundle.read_bytes()


def structure_digest(bundle: Path) -> str:
    """sha256 over everything in the model but the weight values."""
    from tensorflow.lite.python import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAsModel(model_bytes(bundle), 0)
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        digest.update(repr(parts).encode())

    for i in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(i)
        add("signature", signature.SignatureKey(), signature.SubgraphIndex(), signature.InputsLength())
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        add("opcode", code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.CustomCode(), code.Version())
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            quant = tensor.Quantization()
            buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() else None
            add(
                "tensor",
                s,
                t,
                tensor.Name(),
                tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (),
                tensor.Type(),
                quant.ScaleLength() if quant else 0,
                quant.QuantizedDimension() if quant else 0,
                (buffer.DataLength() or buffer.Size()) if buffer else 0,
            )
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            add(
                "op",
                s,
                op.OpcodeIndex(),
                tuple(op.InputsAsNumpy()) if op.InputsLength() else (),
                tuple(op.OutputsAsNumpy()) if op.OutputsLength() else (),
                op.BuiltinOptionsType(),
            )
    return digest.hexdigest()
