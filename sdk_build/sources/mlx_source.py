"""MLX checkpoints (what `mlx_lm.convert` writes: mlx-community's 4bit/6bit/8bit/bf16 folders) -> fp32 safetensors.

An MLX folder is a Hugging Face folder whose `config.json` may carry `"quantization": {"group_size", "bits",
"mode"}` (plus per-module overrides: a module path -> its own `{group_size, bits}`, or `false` for a module left
in float), and whose safetensors hold, for each quantized module, a packed `weight` (uint32) beside `scales` and
`biases`. Tensor names are Hugging Face's (`model.layers.N.mlp.down_proj.weight`), and Gemma's RMSNorm weights are
stored zero-centred as in Hugging Face (MLX adds the 1 when it runs them).

Dequantization follows MLX's affine formula, `w = scales * q + biases` per group of `group_size` consecutive
input columns, where q is the unsigned `bits`-bit integer at bit offset `i * bits` of the row's packed
little-endian bit stream (that one rule covers MLX's packing of 2, 3, 4, 5, 6 and 8 bits). It is computed in
float32 from the stored scales and biases, so it equals `mx.dequantize` on float32 scales and biases bit for bit;
this module does not need MLX installed. Other MLX modes (mxfp4, nvfp4, mxfp8) are refused by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sdk_build.architecture import ModelShape, identify, read_config, shape_from_hf_config
from sdk_build.errors import SourceError
from sdk_build.sources.provenance import SourceInfo, count_types

AFFINE = "affine"
BITS = (2, 3, 4, 5, 6, 8)
QUANTIZATION_KEYS = ("quantization", "quantization_config")
_DTYPE_NAMES = {"F32": "F32", "F16": "F16", "BF16": "BF16"}
_ROWS_PER_CHUNK = 8192  # bounds the temporaries of unpacking a 262k-row embedding


@dataclasses.dataclass(frozen=True)
class GroupQuantization:
    bits: int
    group_size: int


@dataclasses.dataclass(frozen=True)
class MlxFolder:
    """A checked MLX folder: how each tensor is stored, known before anything is converted."""

    directory: Path
    config: dict[str, Any]
    shape: ModelShape
    quantized: dict[str, GroupQuantization]
    """Module path (`model.layers.0.mlp.down_proj`) -> its quantization, for every packed weight."""
    files: dict[str, Path]
    """Tensor name -> the safetensors file holding it."""
    source: SourceInfo


def _headers(directory: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, Path], set[str]]:
    """(name -> (dtype, shape), name -> file, the files' `format` metadata values) from the safetensors headers."""
    infos: dict[str, tuple[str, tuple[int, ...]]] = {}
    files: dict[str, Path] = {}
    formats: set[str] = set()
    for file in sorted(directory.glob("*.safetensors")):
        try:
            with open(file, "rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                if not 0 < length < 100 * 2**20:
                    raise ValueError(f"header length {length}")
                header = json.loads(handle.read(length))
        except (OSError, ValueError) as exc:
            raise SourceError(f"{file} is not a readable safetensors file ({exc}); download it again") from exc
        formats.add(str((header.pop("__metadata__", None) or {}).get("format", "")))
        for name, info in header.items():
            infos[name] = (str(info["dtype"]), tuple(int(d) for d in info["shape"]))
            files[name] = file
    return infos, files, formats


def quantization_config(config: dict[str, Any]) -> dict[str, Any] | None:
    for key in QUANTIZATION_KEYS:
        if isinstance(config.get(key), dict) and "bits" in config[key]:
            return config[key]
    return None


def is_mlx_folder(directory: Path) -> bool:
    """An MLX folder: a config with MLX's `quantization` block, or safetensors that MLX wrote (format "mlx")."""
    try:
        config = read_config(directory)
    except SourceError:
        return False
    if quantization_config(config) is not None:
        return True
    try:
        return "mlx" in _headers(directory)[2]
    except SourceError:
        return False


def _group(spec: dict[str, Any], where: str) -> GroupQuantization:
    mode = spec.get("mode", AFFINE)
    bits, group_size = spec.get("bits"), spec.get("group_size")
    if mode != AFFINE or bits not in BITS or not isinstance(group_size, int) or group_size <= 0:
        raise SourceError(
            f"{where}: MLX quantization {{mode {mode!r}, bits {bits!r}, group_size {group_size!r}}} is not "
            f"supported; gemma-edge reads MLX's affine quantization with bits {', '.join(map(str, BITS))}"
        )
    return GroupQuantization(int(bits), group_size)


def read_mlx(directory: Path, *, allow_custom_shape: bool = False) -> MlxFolder:
    """Check `directory` as an MLX checkpoint: shape, quantization, and every tensor's presence and layout."""
    from sdk_build.convert.model_loader import expected_tensors

    config = read_config(directory)
    shape = shape_from_hf_config(config)
    identify(shape, allow_custom_shape=allow_custom_shape)
    infos, files, _ = _headers(directory)
    if not infos:
        raise SourceError(f"{directory} has no *.safetensors weights")
    spec = quantization_config(config)
    default = _group(spec, f"{directory.name}/config.json") if spec is not None else None
    quantized: dict[str, GroupQuantization] = {}
    stored: list[str] = []
    for name, want in expected_tensors(shape).items():
        module = name.removesuffix(".weight")
        if name not in infos:
            raise SourceError(f"{directory.name} lacks the tensor {name}; the MLX folder is incomplete: download it again")
        dtype, got = infos[name]
        if dtype != "U32":
            if dtype not in _DTYPE_NAMES:
                raise SourceError(f"tensor {name} of {directory.name} has dtype {dtype}; MLX weights are F32/F16/BF16 or packed U32")
            if got != want:
                raise SourceError(f"tensor {name} of {directory.name} has shape {got}, config.json implies {want}")
            if len(want) >= 2:
                stored.append(_DTYPE_NAMES[dtype])
            continue
        override = spec.get(module) if spec is not None else None
        if default is None or override is False:
            raise SourceError(f"tensor {name} of {directory.name} is packed (U32) but config.json gives no quantization for it")
        if isinstance(override, dict):  # a module's own bits and/or group size; None keeps the folder's value
            group = _group({**spec, **{k: v for k, v in override.items() if v is not None}}, module)
        else:
            group = default
        for part in ("scales", "biases"):
            if f"{module}.{part}" not in infos:
                raise SourceError(
                    f"{directory.name}: {name} is packed but {module}.{part} is missing; the MLX folder is "
                    "incomplete: download it again"
                )
        rows, cols = want
        expect_packed = (rows, cols * group.bits // 32)
        expect_groups = (rows, cols // group.group_size)
        if cols % group.group_size or got != expect_packed or any(
            infos[f"{module}.{p}"][1] != expect_groups for p in ("scales", "biases")
        ):
            raise SourceError(
                f"{directory.name}: {module} is stored as {got} + scales {infos[f'{module}.scales'][1]}, which is not "
                f"{group.bits}-bit groups of {group.group_size} for shape {want}; config.json and the weights disagree"
            )
        quantized[module] = group
        stored.append(f"{group.bits}bit-g{group.group_size}")
    return MlxFolder(directory, config, shape, quantized, files, _source_info(quantized, stored))


def _source_info(quantized: dict[str, GroupQuantization], stored: list[str]) -> SourceInfo:
    types = count_types(stored)
    if not quantized:
        return SourceInfo("mlx", types[0][0], quantized=False, tensor_types=types)
    schemes = {f"{g.bits}bit-g{g.group_size}" for g in quantized.values()}
    main = count_types(f"{g.bits}bit-g{g.group_size}" for g in quantized.values())[0][0]
    return SourceInfo("mlx", main + ("-mixed" if len(schemes) > 1 else ""), quantized=True, tensor_types=types)


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """The unsigned `bits`-bit integers packed, lowest bits first, into each row of `packed` (uint32)."""
    rows = packed.shape[0]
    stream = np.ascontiguousarray(packed).view(np.uint8).reshape(rows, -1)
    count = stream.shape[1] * 8 // bits
    start = np.arange(count, dtype=np.int64) * bits
    first = start // 8
    shift = (start % 8).astype(np.uint16)
    padded = np.concatenate([stream, np.zeros((rows, 1), dtype=np.uint8)], axis=1).astype(np.uint16)
    window = padded[:, first] | (padded[:, first + 1] << np.uint16(8))  # a value spans at most two bytes
    return ((window >> shift) & np.uint16((1 << bits) - 1)).astype(np.uint8)


def dequantize(packed: np.ndarray, scales: np.ndarray, biases: np.ndarray, group: GroupQuantization) -> np.ndarray:
    """MLX's affine dequantization in float32: scales * q + biases, per group of `group_size` columns."""
    rows, groups = scales.shape
    out = np.empty((rows, groups * group.group_size), dtype=np.float32)
    for begin in range(0, rows, _ROWS_PER_CHUNK):
        end = min(rows, begin + _ROWS_PER_CHUNK)
        q = unpack(packed[begin:end], group.bits).astype(np.float32).reshape(end - begin, groups, group.group_size)
        s = scales[begin:end].astype(np.float32)[:, :, None]
        b = biases[begin:end].astype(np.float32)[:, :, None]
        out[begin:end] = (q * s + b).reshape(end - begin, -1)
    return out


def _tensor(handle, name: str) -> np.ndarray:
    """A safetensors tensor as numpy: bf16 widened to float32 exactly, uint32 kept as uint32."""
    import torch

    value = handle.get_tensor(name)
    if value.dtype == torch.uint32:
        return value.view(torch.int32).numpy().view(np.uint32)
    return value.to(torch.float32).numpy()


def dequantized_tensors(folder: MlxFolder, progress=None) -> Iterator[tuple[str, np.ndarray]]:
    """(Hugging Face name, fp32 array) for every tensor the model needs."""
    from safetensors import safe_open

    from sdk_build.convert.model_loader import expected_tensors

    names: Iterable[str] = list(expected_tensors(folder.shape))
    with contextlib.ExitStack() as stack:
        handles = {f: stack.enter_context(safe_open(str(f), framework="pt")) for f in set(folder.files.values())}

        def read(name: str) -> np.ndarray:
            return _tensor(handles[folder.files[name]], name)

        for name in progress(names, "dequantize MLX") if progress else names:
            module = name.removesuffix(".weight")
            if module in folder.quantized:
                values = dequantize(read(name), read(f"{module}.scales"), read(f"{module}.biases"),
                                    folder.quantized[module])
            else:
                values = read(name)
            if not np.isfinite(values).all():
                raise SourceError(f"tensor {name} of {folder.directory.name} holds non-finite values; the folder is corrupt")
            yield name, np.ascontiguousarray(values)


def materialize_mlx(folder: MlxFolder, output_dir: Path, progress=None) -> None:
    """Write fp32 `model.safetensors`, `config.json` (without the quantization block) and `tokenizer.model`."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from sdk_build.sources.tokenizer_json import sentencepiece_from_tokenizer_json

    tensors = {name: torch.from_numpy(values) for name, values in dequantized_tensors(folder, progress)}
    save_file(tensors, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    tokenizer = folder.directory / "tokenizer.model"
    if tokenizer.is_file():
        shutil.copyfile(tokenizer, output_dir / "tokenizer.model")
    elif (folder.directory / "tokenizer.json").is_file():
        sentencepiece_from_tokenizer_json(folder.directory / "tokenizer.json", output_dir / "tokenizer.model",
                                          vocab_size=folder.shape.vocab_size)
    else:
        raise SourceError(
            f"{folder.directory} has neither tokenizer.model nor tokenizer.json; copy the tokenizer from the "
            "original model's folder"
        )
    config = {k: v for k, v in folder.config.items() if k not in QUANTIZATION_KEYS}
    config.setdefault("_name_or_path", folder.directory.name)
    config["torch_dtype"] = "float32"
    (output_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja"):  # what instruction-tuned detection reads
        if (folder.directory / name).is_file():
            shutil.copyfile(folder.directory / name, output_dir / name)
