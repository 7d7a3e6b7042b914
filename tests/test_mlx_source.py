"""MLX checkpoints, as the real `mlx_lm.convert` writes them: every bit width MLX packs comes back as exactly MLX's own
`mx.dequantize` (in float32), float folders as their bf16 values; the tokenizer is rebuilt from `tokenizer.json` when
there is no `tokenizer.model`; bad folders fail in one line and leave nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sdk_build.errors import SourceError
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.mlx_source import BITS, GroupQuantization, dequantize
from tests.source_support import WIDE_TINY, load_tensors

mx = pytest.importorskip("mlx.core", reason="the MLX extra (pip install -e '.[mlx]') is part of the dev install")


@pytest.fixture(scope="module")
def wide_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("wide-tiny") / "tiny-gemma3-it", shape=WIDE_TINY)


def mlx_convert(source: Path, output: Path, **options) -> Path:
    """mlx-lm's own converter (what made mlx-community's folders), bf16 like theirs."""
    from conftest import import_mlx_convert

    convert = import_mlx_convert()

    if not (output / "config.json").exists():
        convert(str(source), mlx_path=str(output), dtype="bfloat16", **options)
    return output


def mlx_reference(folder: Path) -> dict[str, np.ndarray]:
    """MLX's own fp32 view of a folder: mx.dequantize for packed weights (float32 scales/biases), others widened."""
    config = json.loads((folder / "config.json").read_text())
    spec = config.get("quantization") or {}
    arrays: dict[str, object] = {}
    for file in sorted(folder.glob("*.safetensors")):
        arrays.update(mx.load(str(file)))
    out = {}
    for name, value in arrays.items():
        if name.endswith((".scales", ".biases")):
            continue
        module = name.removesuffix(".weight")
        if value.dtype == mx.uint32:
            own = spec.get(module) if isinstance(spec.get(module), dict) else spec
            value = mx.dequantize(value, arrays[f"{module}.scales"].astype(mx.float32),
                                  arrays[f"{module}.biases"].astype(mx.float32),
                                  group_size=own["group_size"], bits=own["bits"])
        out[name] = np.array(value.astype(mx.float32))
    return out


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_dequantize_equals_mx_dequantize(bits: int, group_size: int) -> None:
    weights = mx.random.normal((48, 512), key=mx.random.key(bits * 1000 + group_size)).astype(mx.bfloat16)
    packed, scales, biases = mx.quantize(weights, group_size=group_size, bits=bits)
    scales, biases = scales.astype(mx.float32), biases.astype(mx.float32)
    expected = np.array(mx.dequantize(packed, scales, biases, group_size=group_size, bits=bits))
    ours = dequantize(np.array(packed), np.array(scales), np.array(biases), GroupQuantization(bits, group_size))
    assert ours.dtype == np.float32 and np.array_equal(ours, expected)
    # An independent per-value reading of the bit stream, for the same numbers.
    stream = np.unpackbits(np.array(packed).view(np.uint8), axis=1, bitorder="little")
    q = stream.reshape(48, -1, bits) @ (1 << np.arange(bits))
    manual = q.reshape(48, -1, group_size) * np.array(scales)[:, :, None] + np.array(biases)[:, :, None]
    assert np.array_equal(ours, manual.reshape(48, -1).astype(np.float32))


@pytest.mark.parametrize("options, quantization", [
    ({"quantize": True, "q_bits": 4, "q_group_size": 64}, "4bit-g64"),
    ({"quantize": True, "q_bits": 8, "q_group_size": 64}, "8bit-g64"),
    ({"quantize": True, "q_bits": 3, "q_group_size": 32}, "3bit-g32"),
    ({"quantize": True, "q_bits": 6, "q_group_size": 128}, "6bit-g128"),
    ({"quantize": True, "q_bits": 2, "q_group_size": 64}, "2bit-g64"),
    ({"quantize": True, "q_bits": 5, "q_group_size": 64}, "5bit-g64"),
    ({"quantize": True, "quant_predicate": "mixed_3_6"}, "3bit-g64-mixed"),
    ({}, "BF16"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_converted_folder_dequantizes_like_mlx(options: dict, quantization: str, wide_checkpoint: Path,
                                               tmp_path: Path) -> None:
    folder = mlx_convert(wide_checkpoint, tmp_path / "tiny-gemma3-it-mlx", **options)
    checkpoint = resolve_checkpoint(str(folder), tmp_path / "cache", allow_custom_shape=True)
    ours, reference, original = load_tensors(checkpoint.directory), mlx_reference(folder), load_tensors(wide_checkpoint)
    assert set(ours) == set(original)
    for name in original:
        assert ours[name].dtype == np.float32 and ours[name].shape == original[name].shape, name
        assert np.array_equal(ours[name], reference[name]), name
        assert np.corrcoef(ours[name].ravel(), original[name].ravel())[0, 1] > 0.8, name
    assert (checkpoint.source.format, checkpoint.source.quantization) == ("mlx", quantization)
    assert checkpoint.source.quantized == bool(options)
    assert checkpoint.instruction_tuned  # the folder name says -it-
    assert json.loads((checkpoint.directory / "config.json").read_text()).get("quantization") is None


def test_tokenizer_rebuilt_from_tokenizer_json(wide_checkpoint: Path, tmp_path: Path) -> None:
    import sentencepiece as spm
    import tokenizers

    folder = mlx_convert(wide_checkpoint, tmp_path / "tiny-mlx", quantize=True, q_bits=4, q_group_size=64)
    assert not (folder / "tokenizer.model").exists()  # transformers 5 saves only tokenizer.json
    checkpoint = resolve_checkpoint(str(folder), tmp_path / "cache", allow_custom_shape=True)
    original = spm.SentencePieceProcessor(model_file=str(wide_checkpoint / "tokenizer.model"))
    rebuilt = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    hub = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert rebuilt.vocab_size() == original.vocab_size()
    assert [rebuilt.id_to_piece(i) for i in range(rebuilt.vocab_size())] == \
        [original.id_to_piece(i) for i in range(original.vocab_size())]
    from sdk_build.sources.tiny_checkpoint import _CORPUS

    texts = [*_CORPUS.split("."), "<start_of_turn>user\nHello 2026<end_of_turn>\n", "tabs\tand  spaces", "émoji 😀"]
    for text in texts:
        assert rebuilt.encode(text) == original.encode(text), text
        assert rebuilt.encode(text) == hub.encode(text, add_special_tokens=False).ids, text
    assert (rebuilt.bos_id(), rebuilt.eos_id(), rebuilt.pad_id(), rebuilt.unk_id()) == (2, 1, 0, 3)


# --- bad inputs ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlx_4bit(wide_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlx_convert(wide_checkpoint, tmp_path_factory.mktemp("mlx") / "tiny-4bit", quantize=True, q_bits=4,
                       q_group_size=64)


def _refused(folder: Path, cache: Path, match: str) -> None:
    with pytest.raises(SourceError, match=match) as caught:
        resolve_checkpoint(str(folder), cache, allow_custom_shape=True)
    assert "\n" not in str(caught.value)
    assert not (cache / "checkpoints").exists() or not any((cache / "checkpoints").iterdir())


def _edited_copy(folder: Path, tmp_path: Path, *, drop: str | None = None, config: dict | None = None) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    if drop:
        arrays = {k: v for k, v in mx.load(str(copy / "model.safetensors")).items() if k != drop}
        (copy / "model.safetensors").unlink()
        mx.save_safetensors(str(copy / "model.safetensors"), arrays, metadata={"format": "mlx"})
    if config:
        data = json.loads((copy / "config.json").read_text())
        data["quantization"] = data["quantization_config"] = config
        (copy / "config.json").write_text(json.dumps(data))
    return copy


def test_missing_scales_is_refused(mlx_4bit: Path, tmp_path: Path) -> None:
    folder = _edited_copy(mlx_4bit, tmp_path, drop="model.layers.1.mlp.up_proj.scales")
    _refused(folder, tmp_path / "cache", r"model.layers.1.mlp.up_proj.weight is packed but "
             r"model.layers.1.mlp.up_proj.scales is missing; the MLX folder is incomplete")


@pytest.mark.parametrize("config, match", [
    ({"group_size": 32, "bits": 4, "mode": "mxfp4"}, r"MLX quantization \{mode 'mxfp4', bits 4, group_size 32\} is not supported"),
    ({"group_size": 64, "bits": 7}, r"bits 7, group_size 64\} is not supported"),
    ({"group_size": 64, "bits": 8}, r"is not 8-bit groups of 64 for shape .*; config.json and the weights disagree"),
], ids=["mxfp4", "7-bit", "bits-disagree"])
def test_unknown_or_inconsistent_quantization_is_refused(config: dict, match: str, mlx_4bit: Path,
                                                         tmp_path: Path) -> None:
    _refused(_edited_copy(mlx_4bit, tmp_path, config=config), tmp_path / "cache", match)
