"""Activation statistics for the calibrated recipes (GPTQ, OSCAR), collected by ai-edge-quantizer's own calibrator
on real text (`sdk_build.convert.text_corpus.CALIBRATION`).

Why it is done this way:
- The float export has several signatures (prefill_32, prefill_128, ..., decode) whose fully connected ops share
  one weight buffer each, but whose activation tensors have their own names. The quantizer computes a shared
  weight's integers once, from its first consumer's statistics, and copies weights whose consumers disagree. So
  one prefill signature is calibrated (the widest one of at most `MAX_CALIBRATION_TOKENS` tokens: whole text
  chunks from position 0, the KV cache empty, a causal mask), and its statistics are then given to every other
  consumer of the same weight: each weight is quantized once, from the same text, whatever the signature order.
- The calibrator runs the float model in LiteRT's interpreter (the converted graph itself, not the PyTorch model),
  which is what the statistics must describe.
- Memory: ai-edge-quantizer 0.10.0's calibrator runs the model in an interpreter with XNNPACK, which packs its own
  copy of the float weights for every signature of a multi-signature file (on the 1B, several times the model's
  size after a single step; TFLite's builtin kernels use the weights in place), and at each step it copies every named tensor
  of the signature out of the interpreter, the weights too, though its statistics read activations only
  (constants are skipped before the copy is looked at: `common_quantize.collect_activation_tensor_statistics`).
  Its GPTQ statistics also take a float64 Hessian of every fully connected op's output, not only of its input,
  which GPTQ never reads: on the 1B a 6912 x 6912 one per gate and up projection of every layer. Together they
  drove the 1B's calibrated builds out of a 23 GB machine's memory (docs/building.md). `lean_calibration` runs the
  calibrator on the builtin kernels, hands it the activations alone and has GPTQ's statistics skip op outputs (an
  output that feeds another fully connected op gets its Hessian there, as that op's input); what `calibrate` needs
  of the graph itself is read once before the calibrator starts, and the calibrator is freed when it is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdk_build.convert.text_corpus import CALIBRATION, TextSet
from sdk_build.errors import BuildError

MAX_CALIBRATION_TOKENS = 128
"""Longest prefill signature calibrated: 128-token chunks see the attention of a real context, and the statistics
of a 1B model's widest layers stay a few hundred MB per chunk length."""
CALIBRATION_CHUNKS = 16
"""Text chunks run through the calibrated signature: 16 x 128 = 2,048 tokens of the calibration set."""


@dataclasses.dataclass(frozen=True)
class CalibrationSpec:
    """What a calibrated recipe is calibrated on: part of the build fingerprint."""

    text: TextSet = CALIBRATION
    chunks: int = CALIBRATION_CHUNKS
    max_tokens: int = MAX_CALIBRATION_TOKENS

    def identity(self) -> dict[str, object]:
        return {"text": self.text.describe(), "chunks": self.chunks, "max_tokens": self.max_tokens,
                "kernels": CALIBRATION_KERNELS}


def calibrated_signature(signatures: dict[str, Any], max_tokens: int) -> tuple[str, int]:
    """The prefill signature to calibrate (name, tokens): the widest with at most `max_tokens` tokens."""
    prefill = {}
    for name, details in signatures.items():
        if name.startswith("prefill"):
            prefill[name] = int(details["tokens"]["shape"][-1])
    fitting = {name: n for name, n in prefill.items() if n <= max_tokens}
    if not fitting:
        raise BuildError(f"no prefill signature of at most {max_tokens} tokens to calibrate on (has {prefill})")
    name = max(fitting, key=fitting.get)  # type: ignore[arg-type]
    return name, fitting[name]


def token_chunks(tokenizer_path: Path, text: str, length: int, count: int) -> list[list[int]]:
    """`count` chunks of `length` token ids, each `<bos>` then consecutive text tokens."""
    import sentencepiece as spm

    tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    ids = tokenizer.encode(text)
    body = length - 1
    chunks = [[tokenizer.bos_id(), *ids[i * body:(i + 1) * body]] for i in range(count)]
    chunks = [c for c in chunks if len(c) == length]
    if len(chunks) < count:
        raise BuildError(f"the calibration text has {len(ids)} tokens: too few for {count} chunks of {length}")
    return chunks


def signature_inputs(details: dict[str, Any], tokens: list[int]) -> dict[str, Any]:
    """One prefill call from an empty cache: the tokens at positions 0..n-1, a causal mask, zero KV caches."""
    import numpy as np

    inputs = {}
    for name, detail in details.items():
        shape, dtype = tuple(detail["shape"]), detail["dtype"]
        if name == "tokens":
            inputs[name] = np.asarray(tokens, dtype=dtype).reshape(shape)
        elif name == "input_pos":
            inputs[name] = np.arange(shape[0], dtype=dtype)
        elif name == "mask":
            rows, columns = shape[-2], shape[-1]
            allowed = np.arange(columns)[None, :] <= np.arange(rows)[:, None]
            inputs[name] = np.where(allowed, 0.0, np.finfo(np.float32).min).astype(dtype).reshape(shape)
        else:
            inputs[name] = np.zeros(shape, dtype=dtype)
    return inputs


@dataclasses.dataclass
class WeightConsumers:
    """One fully connected weight: its input width and the activation tensors that feed it, in every signature."""

    in_features: int
    activations: list[str]


def read_float_model(float_model: Path) -> Any:
    """The flatbuffer of `float_model` as ai-edge-quantizer reads it (for `shared_weight_consumers` and
    `constant_tensor_names`: read once, it holds a copy of every weight)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    return tfl.read_model(tfl.get_model_content(Path(float_model)))


def shared_weight_consumers(model: Any) -> list[WeightConsumers]:
    """Every fully connected weight of `model` (`read_float_model`), grouped by its bytes (litert-torch may give a
    weight a buffer per signature), with the names of its activation inputs."""
    import hashlib

    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    fully_connected = {i for i, code in enumerate(model.operatorCodes)
                       if max(code.builtinCode, code.deprecatedBuiltinCode) == 9}  # BuiltinOperator.FULLY_CONNECTED
    digests: dict[int, str] = {}
    groups: dict[str, WeightConsumers] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in fully_connected or len(op.inputs) < 2:
                continue
            activation, weight = subgraph.tensors[op.inputs[0]], subgraph.tensors[op.inputs[1]]
            if weight.buffer not in digests:
                data = tfl.get_tensor_data(weight, model.buffers)
                digests[weight.buffer] = hashlib.sha256(b"" if data is None else data.tobytes()).hexdigest()
            group = groups.setdefault(digests[weight.buffer], WeightConsumers(int(weight.shape[-1]), []))
            group.activations.append(tfl.get_tensor_name(activation))
    return list(groups.values())


def constant_tensor_names(model: Any) -> dict[int, frozenset[str]]:
    """Per subgraph of `model` (`read_float_model`), the names of the tensors that hold data in the file (weights,
    constants)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    return {index: frozenset(tfl.get_tensor_name(t) for t in subgraph.tensors
                             if model.buffers[t.buffer].data is not None)
            for index, subgraph in enumerate(model.subgraphs)}


@contextlib.contextmanager
def interpreter_options(**forced: Any) -> Iterator[None]:
    """While it lasts, every interpreter ai-edge-quantizer 0.10.0 makes (`tfl_interpreter_utils.create_tfl_interpreter`,
    which it looks up at each call) gets `forced` options over its own."""
    from ai_edge_quantizer.utils import tfl_interpreter_utils

    original = tfl_interpreter_utils.create_tfl_interpreter

    def with_options(tflite_model, *args, **kwargs):
        return original(tflite_model, *args, **{**kwargs, **forced})

    tfl_interpreter_utils.create_tfl_interpreter = with_options
    try:
        yield
    finally:
        tfl_interpreter_utils.create_tfl_interpreter = original


CALIBRATION_KERNELS = "tflite-builtin"
"""The kernels the calibrator's interpreter runs (see the module doc): part of the calibration's identity, since
statistics from other kernels differ in their last bits."""


@contextlib.contextmanager
def lean_calibration(constants: dict[int, frozenset[str]]) -> Iterator[None]:
    """While it lasts, ai-edge-quantizer 0.10.0's calibrator builds its interpreter without XNNPACK, its per-step copy
    of a subgraph's tensors leaves out `constants`, and GPTQ's statistics cover op inputs only (see the module doc).
    All three are module functions the calibrator looks up at each call."""
    import numpy as np
    from ai_edge_quantizer import algorithm_manager, qtyping
    from ai_edge_quantizer.utils import tfl_interpreter_utils

    original_contents = tfl_interpreter_utils.get_tensor_name_to_content_map
    original_function = algorithm_manager.get_quantization_func

    def activation_contents(interpreter, subgraph_index: int = 0, dequantize: bool = False) -> dict[str, Any]:
        skip = constants.get(subgraph_index, frozenset())
        return {detail["name"]: tfl_interpreter_utils.get_tensor_data(interpreter, detail, subgraph_index, dequantize)
                for detail in interpreter.get_tensor_details(subgraph_index)
                if detail["name"] and detail["name"] not in skip and np.all(detail["shape"])}

    def inputs_only(calibrate_op):
        def calibrate(op, graph_info, content_map, inputs_to_ignore=None, outputs_to_ignore=None, **kwargs):
            return calibrate_op(op, graph_info, content_map, inputs_to_ignore, range(len(op.outputs)), **kwargs)
        return calibrate

    def quantization_function(algorithm, op_name, mode):
        function = original_function(algorithm, op_name, mode)
        gptq_statistics = algorithm == algorithm_manager.AlgorithmName.GPTQ and mode == qtyping.QuantizeMode.CALIBRATE
        return inputs_only(function) if gptq_statistics else function

    tfl_interpreter_utils.get_tensor_name_to_content_map = activation_contents
    algorithm_manager.get_quantization_func = quantization_function
    try:
        with interpreter_options(use_xnnpack=False):
            yield
    finally:
        tfl_interpreter_utils.get_tensor_name_to_content_map = original_contents
        algorithm_manager.get_quantization_func = original_function


def share_statistics(qsvs: dict[str, Any], weights: list[WeightConsumers]) -> dict[str, Any]:
    """`qsvs` with every consumer of a weight given the calibrated consumer's statistics (see the module doc).

    A weight no calibrated signature reads (the last layer's attention output and MLP exist only in `decode`: a
    prefill needs nothing of that layer but its K/V) gets an identity Hessian, with which GPTQ is plain min-max
    rounding. It must get one: ai-edge-quantizer 0.10.0's GPTQ returns no integers for a weight without a Hessian,
    and the file then keeps that weight's float bytes under an int4 type (`check_packed` catches that)."""
    import numpy as np

    shared = dict(qsvs)
    for weight in weights:
        calibrated = next((qsvs[n] for n in weight.activations
                           if n in qsvs and ("hessian" in qsvs[n] or "mu2" in qsvs[n])), None)
        if calibrated is None:
            calibrated = {"hessian": np.eye(weight.in_features, dtype=np.float32), "num_samples": np.array(1)}
        for name in weight.activations:
            shared[name] = calibrated
    return shared


def calibration_samples(float_model: Path, tokenizer_path: Path, spec: CalibrationSpec) -> tuple[str, list[dict]]:
    """The signature to calibrate and its inputs, one per text chunk of `spec`."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(float_model))
    name, length = calibrated_signature({k: interpreter.get_signature_runner(k).get_input_details()
                                         for k in interpreter.get_signature_list()}, spec.max_tokens)
    runner_inputs = interpreter.get_signature_runner(name).get_input_details()
    del interpreter
    return name, [signature_inputs(runner_inputs, chunk)
                  for chunk in token_chunks(tokenizer_path, spec.text.text(), length, spec.chunks)]


def calibrate(float_model: Path, recipe: list[dict], tokenizer_path: Path, spec: CalibrationSpec) -> dict[str, Any]:
    """Activation statistics of `float_model` for `recipe`, from `spec`'s text (see the module doc)."""
    from ai_edge_quantizer import calibrator, recipe_manager

    name, samples = calibration_samples(float_model, tokenizer_path, spec)
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    model = read_float_model(float_model)
    constants, consumers = constant_tensor_names(model), shared_weight_consumers(model)
    del model  # before the calibrator reads its own copies
    gc.collect()
    with lean_calibration(constants):
        engine = calibrator.Calibrator(str(float_model), num_threads=2)
        engine.calibrate({name: samples}, manager)
    qsvs = engine.get_model_qsvs()
    del engine  # its copies of the model (flatbuffer and interpreter), before ai-edge-quantizer quantizes
    gc.collect()
    return share_statistics(qsvs, consumers)
