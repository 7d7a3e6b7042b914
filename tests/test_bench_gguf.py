"""bench's GGUF side, pure logic only: the writer round-trips a tiny Gemma-3-shaped model through gguf-py's reader
(names, types, (1 + w) norms, hyperparameters, copied tokenizer), q/k/v un-fusing inverts litert-torch's fusion, and
the weight bytes read per token are counted as the module documents."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench.bandwidth import gguf_bytes_per_token
from bench.checkpoint_tensors import litert_to_hf, split_qkv
from bench.gguf_writer import GgufType, GgufWriteError, gguf_name, write_gguf
from sdk_build.architecture import GEMMA3_270M
from sdk_build.convert.model_loader import expected_tensors

TINY = dataclasses.replace(
    GEMMA3_270M,
    vocab_size=96,
    hidden_size=64,
    intermediate_size=128,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=32,
    query_pre_attn_scalar=32,
    max_position_embeddings=512,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny gemma3 GGUF standing in for the PyPI one: a 96-token vocabulary and a few general keys."""
    import gguf

    path = tmp_path_factory.mktemp("template") / "template.gguf"
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_name("template")
    writer.add_block_count(99)  # must be replaced by the shape's value
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"tok{i}" for i in range(TINY.vocab_size)])
    writer.add_token_scores([float(-i) for i in range(TINY.vocab_size)])
    writer.add_token_types([1] * TINY.vocab_size)
    writer.add_bos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_file_type(15)
    writer.add_tensor("token_embd.weight", np.zeros((TINY.vocab_size, TINY.hidden_size), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        name: (rng.standard_normal(shape) * (0.1 if len(shape) == 1 else 0.02)).astype(np.float32)
        for name, shape in expected_tensors(TINY).items()
    }


def _read(path: Path):
    import gguf

    reader = gguf.GGUFReader(path)
    return reader, {t.name: t for t in reader.tensors}


@pytest.mark.parametrize("file_type", list(GgufType))
def test_writer_round_trip(template: Path, tensors: dict[str, np.ndarray], tmp_path: Path, file_type: GgufType) -> None:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize

    path = write_gguf(tensors, TINY, template, tmp_path / f"tiny-{file_type.value}.gguf", file_type, name="tiny")
    reader, by_name = _read(path)
    assert set(by_name) == {gguf_name(n) for n in tensors}
    assert reader.fields["gemma3.block_count"].contents() == TINY.num_layers
    assert reader.fields["gemma3.embedding_length"].contents() == TINY.hidden_size
    assert reader.fields["gemma3.feed_forward_length"].contents() == TINY.intermediate_size
    assert reader.fields["tokenizer.ggml.tokens"].contents()[5] == "tok5"
    assert reader.fields["tokenizer.ggml.bos_token_id"].contents() == 2
    assert reader.fields["general.name"].contents() == "tiny"
    assert reader.fields["general.file_type"].contents() != 15  # the template's own file type is not copied

    tolerance = {GgufType.F32: 0.0, GgufType.BF16: 1e-3, GgufType.Q8_0: 2e-3, GgufType.Q4_0: 2e-2}[file_type]
    for hf, values in tensors.items():
        stored = by_name[gguf_name(hf)]
        if values.ndim == 1:
            assert stored.tensor_type == Q.F32
            np.testing.assert_allclose(np.asarray(stored.data), values + 1.0, rtol=0, atol=1e-6)  # (1 + w) norms
            continue
        expected_type = {GgufType.F32: Q.F32, GgufType.BF16: Q.BF16, GgufType.Q8_0: Q.Q8_0, GgufType.Q4_0: Q.Q4_0}[file_type]
        if stored.name == "token_embd.weight" and file_type is GgufType.Q4_0:
            expected_type = Q.Q8_0  # tied embedding/output kept at 8 bits
        assert stored.tensor_type == expected_type, stored.name
        restored = dequantize(stored.data, stored.tensor_type).reshape(values.shape)
        np.testing.assert_allclose(restored, values, rtol=0, atol=tolerance + 1e-7)


def test_writer_rejects_a_misshapen_checkpoint(template: Path, tensors: dict[str, np.ndarray], tmp_path: Path) -> None:
    broken = dict(tensors)
    broken["model.layers.0.mlp.up_proj.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(GgufWriteError, match="up_proj"):
        write_gguf(broken, TINY, template, tmp_path / "broken.gguf", GgufType.F32, name="x")
    assert not (tmp_path / "broken.gguf").exists()


def test_unknown_tensor_name_is_refused() -> None:
    with pytest.raises(GgufWriteError, match="vision_tower"):
        gguf_name("model.vision_tower.weight")


def test_bytes_per_token_counts_the_tied_embedding_once_plus_a_row(
    template: Path, tensors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    path = write_gguf(tensors, TINY, template, tmp_path / "tiny.gguf", GgufType.Q8_0, name="tiny")
    _, by_name = _read(path)
    total = sum(int(t.n_bytes) for t in by_name.values())
    row = int(by_name["token_embd.weight"].n_bytes) // TINY.vocab_size
    assert gguf_bytes_per_token(path) == total + row


def _fuse_like_litert(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, groups: int, d: int) -> np.ndarray:
    """litert-torch's loader `_fuse_qkv` with qkv_fused_interleaved (the Gemma 3 default), in numpy."""
    q_per_kv = heads // groups
    qs = np.split(q, groups)
    ks, vs = np.split(k, groups), np.split(v, groups)
    assert all(part.shape[0] == d * q_per_kv for part in qs)
    return np.concatenate([t for group in zip(qs, ks, vs) for t in group])


@pytest.mark.parametrize(("heads", "groups"), [(4, 1), (4, 2)])
def test_split_qkv_inverts_litert_fusion(heads: int, groups: int) -> None:
    shape = dataclasses.replace(TINY, num_heads=heads, num_kv_heads=groups)
    d, h = shape.head_dim, shape.hidden_size
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((n * d, h)).astype(np.float32) for n in (heads, groups, groups))
    fused = _fuse_like_litert(q, k, v, heads, groups, d)
    for got, want in zip(split_qkv(fused, shape), (q, k, v)):
        np.testing.assert_array_equal(got, want)


def test_litert_state_maps_back_to_every_hf_tensor() -> None:
    shape = TINY
    state = {"tok_embedding.weight": np.zeros((shape.vocab_size, shape.hidden_size)), "final_norm.weight": np.zeros(64)}
    for i in range(shape.num_layers):
        p = f"transformer_blocks.{i}."
        qkv_rows = (shape.num_heads + 2 * shape.num_kv_heads) * shape.head_dim
        state.update(
            {
                p + "pre_atten_norm.weight": np.zeros(64),
                p + "post_atten_norm.weight": np.zeros(64),
                p + "atten_func.query_norm.weight": np.zeros(32),
                p + "atten_func.key_norm.weight": np.zeros(32),
                p + "atten_func.qkv_projection.weight": np.zeros((qkv_rows, 64)),
                p + "atten_func.output_projection.weight": np.zeros((64, 64)),
                p + "ff.pre_ff_norm.weight": np.zeros(64),
                p + "ff.post_ff_norm.weight": np.zeros(64),
                p + "ff.w1.weight": np.zeros((128, 64)),
                p + "ff.w3.weight": np.zeros((128, 64)),
                p + "ff.w2.weight": np.zeros((64, 128)),
            }
        )
    mapped = litert_to_hf(state, shape)
    assert {n: tuple(a.shape) for n, a in mapped.items()} == expected_tensors(shape)


@pytest.mark.slow
def test_llama_quantize_makes_each_kind_with_its_options(template: Path, tensors: dict[str, np.ndarray],
                                                         tmp_path: Path) -> None:
    """The real llama-quantize (built once, ~10 minutes on 2 cores) on the tiny F32 GGUF: `Q4_0_pure` is every matrix
    Q4_0, the tied embedding too (`--pure`), which plain Q4_K_M's mix never is; a bad source is one clear error."""
    from gguf import GGMLQuantizationType as Q

    from bench.llama_cpp_build import ensure_llama_cpp
    from bench.vs_llama_cpp_inputs import InputError, llama_quantize

    build = ensure_llama_cpp()
    source = write_gguf(tensors, TINY, template, tmp_path / "tiny-F32.gguf", GgufType.F32, name="tiny")
    pure = llama_quantize(build, source, tmp_path / "tiny-Q4_0_pure.gguf", "Q4_0_pure")
    _, by_name = _read(pure)
    matrices = {name: t.tensor_type for name, t in by_name.items() if len(t.shape) == 2}
    assert matrices and set(matrices.values()) == {Q.Q4_0}, matrices
    mixed = llama_quantize(build, source, tmp_path / "tiny-Q4_K_M.gguf", "Q4_K_M")
    _, by_name = _read(mixed)
    assert by_name["token_embd.weight"].tensor_type != Q.Q4_0
    assert not list(tmp_path.glob(".*.partial*")), "outputs are renamed into place, no temporary file left"

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    with pytest.raises(InputError, match="llama-quantize Q4_0_pure failed on broken.gguf"):
        llama_quantize(build, broken, tmp_path / "out.gguf", "Q4_0_pure")
    assert not (tmp_path / "out.gguf").exists()
