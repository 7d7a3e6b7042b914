"""LoRA adapters without conversion (seconds): reading and refusing PEFT folders, merging, the runtime adapter file,
and manifests with and without LoRA records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sdk_build.architecture import GEMMA3_270M
from sdk_build.errors import AdapterError, BuildError
from sdk_build.lora.adapter import ATTENTION_MODULES, GEMMA3_MODULES, load_adapter, module_dims
from sdk_build.lora.synthetic import peft_key, write_random_adapter
from sdk_build.sources.tiny_checkpoint import TINY_SHAPE


@pytest.fixture(scope="module")
def tiny_shape(tiny_checkpoint_dir: Path):
    from sdk_build.sources import resolve_checkpoint

    return resolve_checkpoint(str(tiny_checkpoint_dir), allow_custom_shape=True).shape


@pytest.fixture
def adapter(tmp_path: Path, tiny_shape) -> Path:
    return write_random_adapter(tmp_path / "my-adapter", tiny_shape, rank=4, alpha=8, modules=GEMMA3_MODULES)


def _edit_config(adapter: Path, **changes) -> None:
    path = adapter / "adapter_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def _edit_tensors(adapter: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def test_valid_adapter_is_read_with_its_scale_and_shapes(adapter: Path, tiny_shape) -> None:
    loaded = load_adapter(adapter, tiny_shape)
    assert loaded.rank == 4 and loaded.alpha == 8 and loaded.scale == 2.0
    assert loaded.modules == GEMMA3_MODULES and loaded.layers == tuple(range(tiny_shape.num_layers))
    a, b = loaded.pairs[(1, "down_proj")]
    assert tuple(a.shape) == (4, tiny_shape.intermediate_size) and tuple(b.shape) == (tiny_shape.hidden_size, 4)
    assert loaded.delta(1, "down_proj").abs().max() > 0, "B must be non-zero or the adapter changes nothing"
    _edit_config(adapter, use_rslora=True)
    assert load_adapter(adapter, tiny_shape).scale == pytest.approx(8 / math.sqrt(4))


def test_fingerprint_follows_the_bytes(adapter: Path, tiny_shape) -> None:
    first = load_adapter(adapter, tiny_shape).fingerprint
    assert load_adapter(adapter, tiny_shape).fingerprint == first
    _edit_config(adapter, lora_alpha=9)
    assert load_adapter(adapter, tiny_shape).fingerprint != first


def test_shapes_of_the_real_models() -> None:
    assert module_dims(GEMMA3_270M, "q_proj") == (640, 1024)
    assert module_dims(GEMMA3_270M, "k_proj") == (640, 256)
    assert module_dims(GEMMA3_270M, "o_proj") == (1024, 640)
    assert module_dims(GEMMA3_270M, "down_proj") == (2048, 640)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _edit_config(d, lora_alpha=...), "has no 'lora_alpha'"),
        (lambda d: _edit_config(d, lora_alpha="big"), "'lora_alpha' must be a positive number, found 'big'"),
        (lambda d: _edit_config(d, r=0), "'r' (the LoRA rank) must be a positive whole number, found 0"),
        (
            lambda d: _edit_config(d, r=8),
            (
                "layers.0.mlp.down_proj.lora_A.weight has shape (4, 128), expected (8, 128) "
                "(r=8 from adapter_config.json; down_proj is 128 -> 64 in this model)"
            ),
        ),
        (lambda d: _edit_config(d, target_modules=["q_proj", "c_attn"]), "names ['c_attn'], which Gemma 3 does not"),
        (lambda d: _edit_config(d, target_modules=...), "has no 'target_modules'"),
        (lambda d: _edit_config(d, peft_type="IA3"), "peft_type is 'IA3', expected 'LORA'"),
        (lambda d: _edit_config(d, use_dora=True), "use_dora = True: DoRA adapters"),
        (lambda d: _edit_config(d, bias="all"), "bias = 'all'"),
        (lambda d: _edit_config(d, modules_to_save=["lm_head"]), "modules_to_save"),
        (
            lambda d: _edit_config(d, layers_to_transform=[0, 7]),
            "layers_to_transform has [7], outside this model's layers 0-1",
        ),
        (lambda d: (d / "adapter_config.json").write_text("{not json"), "adapter_config.json is not valid JSON"),
        (lambda d: (d / "adapter_config.json").unlink(), "has no adapter_config.json"),
        (lambda d: (d / "adapter_model.safetensors").unlink(), "has no adapter_model.safetensors"),
        (
            lambda d: (d / "adapter_model.safetensors").rename(d / "adapter_model.bin"),
            "re-save it with safe_serialization=True",
        ),
        (lambda d: (d / "adapter_model.safetensors").write_bytes(b"garbage"), "is not a readable safetensors file"),
        (
            lambda d: _edit_tensors(
                d,
                lambda t: t.update(
                    {
                        peft_key(5, "q_proj", "A"): t[peft_key(0, "q_proj", "A")].clone(),
                        peft_key(5, "q_proj", "B"): t[peft_key(0, "q_proj", "B")].clone(),
                    }
                ),
            ),
            "is for layer 5, but this model has 2 layers (0-1)",
        ),
        (
            lambda d: _edit_tensors(d, lambda t: t.pop(peft_key(1, "v_proj", "B"))),
            (
                "has base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight but not its partner "
                "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
            ),
        ),
        (
            lambda d: _edit_tensors(
                d, lambda t: t.update({peft_key(0, "up_proj", "B"): t[peft_key(0, "up_proj", "B")].T.contiguous()})
            ),
            "mlp.up_proj.lora_B.weight has shape (4, 128), expected (128, 4)",
        ),
        (
            lambda d: _edit_tensors(
                d,
                lambda t: t.update(
                    {
                        "base_model.model.model.layers.0.self_attn.c_attn.lora_A.weight": t[
                            peft_key(0, "q_proj", "A")
                        ].clone()
                    }
                ),
            ),
            "adapts 'c_attn', which Gemma 3 does not have",
        ),
        (
            lambda d: _edit_tensors(
                d,
                lambda t: t.update(
                    {
                        "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight": t[
                            peft_key(0, "q_proj", "A")
                        ].clone()
                    }
                ),
            ),
            "a multimodal Gemma 3 adapter",
        ),
        (
            lambda d: _edit_config(d, target_modules=["q_proj", "k_proj"]),
            "which adapter_config.json's target_modules does not list (['k_proj', 'q_proj'])",
        ),
    ],
)
def test_bad_adapters_are_refused_with_the_file_key_and_expectation(adapter: Path, tiny_shape, damage, message) -> None:
    damage(adapter)
    with pytest.raises(AdapterError) as caught:
        load_adapter(adapter, tiny_shape)
    assert message in str(caught.value)
    assert str(adapter) in str(caught.value), "the error must name the adapter's files"


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path, tiny_shape) -> None:
    with pytest.raises(AdapterError, match="does not exist; --lora takes a PEFT folder"):
        load_adapter(tmp_path / "nope", tiny_shape)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AdapterError, match="is a file; --lora takes the PEFT folder"):
        load_adapter(tmp_path / "file", tiny_shape)


def test_an_adapter_for_a_bigger_model_is_refused(tmp_path: Path) -> None:
    adapter = write_random_adapter(tmp_path / "for-1b", TINY_SHAPE, rank=2, modules=("q_proj",))
    import dataclasses

    wider = dataclasses.replace(TINY_SHAPE, hidden_size=96)
    with pytest.raises(AdapterError, match=r"q_proj.lora_A.weight has shape \(2, 64\), expected \(2, 96\)"):
        load_adapter(adapter, wider)


def test_fused_checkpoint_is_w_plus_scaled_ba_and_cached(
    tiny_checkpoint_dir: Path, adapter: Path, tiny_shape, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from sdk_build.lora.fuse import PROVENANCE_NAME, fused_checkpoint
    from sdk_build.sources import resolve_checkpoint

    base = resolve_checkpoint(str(tiny_checkpoint_dir), tmp_path, allow_custom_shape=True)
    loaded = load_adapter(adapter, tiny_shape)
    fused = fused_checkpoint(base, loaded, tmp_path)
    assert fused.fingerprint not in (base.fingerprint, loaded.fingerprint) and fused.model == base.model
    assert (fused.directory / "tokenizer.model").read_bytes() == base.tokenizer_path.read_bytes()
    before, after = (
        load_file(str(base.directory / "model.safetensors")),
        load_file(str(fused.directory / "model.safetensors")),
    )
    assert before.keys() == after.keys()
    for layer in range(tiny_shape.num_layers):
        for module in GEMMA3_MODULES:
            parent = "self_attn" if module in ATTENTION_MODULES else "mlp"
            name = f"model.layers.{layer}.{parent}.{module}.weight"
            a, b = loaded.pairs[(layer, module)]
            expected = before[name] + 2.0 * (b @ a)
            assert after[name].dtype.is_floating_point and (after[name] - expected).abs().max() < 1e-6
    for name in ("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"):
        assert (after[name] == before[name]).all()
    stamp = (fused.directory / "model.safetensors").stat().st_mtime_ns
    again = fused_checkpoint(base, loaded, tmp_path)
    assert again.directory == fused.directory and (fused.directory / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((fused.directory / PROVENANCE_NAME).read_text())["adapter"]["fingerprint"] == loaded.fingerprint


def test_random_checkpoints_cannot_be_fused(adapter: Path, tiny_shape, tmp_path: Path) -> None:
    import dataclasses

    from sdk_build.lora.fuse import fused_checkpoint
    from sdk_build.sources.checkpoint import Checkpoint

    fake_random = Checkpoint(
        ref="random:gemma3-270m",
        directory=tmp_path,
        model="gemma3-custom",
        shape=tiny_shape,
        instruction_tuned=False,
        qat=False,
        fingerprint="x",
        random_seed=0,
    )
    with pytest.raises(AdapterError, match="random weights generated at export time"):
        fused_checkpoint(dataclasses.replace(fake_random), load_adapter(adapter, tiny_shape), tmp_path)


def test_runtime_mode_refusals(tmp_path: Path, adapter: Path, tiny_shape) -> None:
    from sdk_build.lora.litert_lora import check_runtime_supported, check_runtime_target, runtime_rank
    from sdk_build.spec import Target

    with pytest.raises(
        AdapterError, match="also targets gate_proj, up_proj, down_proj; build it with --lora-mode fused"
    ):
        check_runtime_supported(load_adapter(adapter, tiny_shape), tiny_shape)
    assert (runtime_rank(1), runtime_rank(16), runtime_rank(17), runtime_rank(32)) == (16, 16, 32, 32)
    with pytest.raises(AdapterError, match="ranks up to 32, this adapter has r=64"):
        runtime_rank(64)
    with pytest.raises(AdapterError, match="not available for web-gpu: MediaPipe tasks-genai 0.10.29 refuses LoRA"):
        check_runtime_target(Target.WEB_GPU)
    check_runtime_target(Target.ANDROID_CPU)


def test_runtime_adapter_file_layout(tmp_path: Path, tiny_shape) -> None:
    """The file LiteRT-LM maps: TFLite flatbuffer, lora_rank metadata, buffers by (offset, size), page-padded."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema_fb

    from sdk_build.lora.litert_lora import read_adapter_rank, write_adapter_file

    adapter = load_adapter(
        write_random_adapter(tmp_path / "attn", tiny_shape, rank=4, alpha=8, modules=("q_proj", "v_proj")), tiny_shape
    )
    path = write_adapter_file(adapter, tiny_shape, tmp_path / "a.tflite", rank=16)
    data = path.read_bytes()
    assert len(data) % 16384 == 0 and data[4:8] == b"TFL3"
    assert read_adapter_rank(path) == 16
    model = schema_fb.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    tensors = {graph.Tensors(i).Name().decode(): graph.Tensors(i) for i in range(graph.TensorsLength())}
    assert len(tensors) == 8 * tiny_shape.num_layers

    def read(name: str):
        tensor = tensors[name]
        buffer = model.Buffers(tensor.Buffer())
        assert buffer.DataLength() == 0 and buffer.Offset() % 64 == 0
        return np.frombuffer(data, np.float32, buffer.Size() // 4, buffer.Offset()).reshape(tensor.ShapeAsNumpy())

    a, b = adapter.pairs[(1, "q_proj")]
    a_prime, b_prime = read("lora_atten_q_a_prime_weight_1"), read("lora_atten_q_b_prime_weight_1")
    assert a_prime.shape == (64, 16) and b_prime.shape == (16, 64)
    assert np.allclose(a_prime[:, :4], (a.T * adapter.scale).numpy()) and not a_prime[:, 4:].any()
    assert np.allclose(b_prime[:4], b.T.numpy()) and not b_prime[4:].any()
    assert not read("lora_atten_k_a_prime_weight_0").any(), "projections the adapter leaves out are zeros"
    delta = a_prime @ b_prime  # what the runtime adds: x @ A' @ B'
    assert np.allclose(delta, adapter.delta(1, "q_proj").T.numpy(), atol=1e-6)


_OLD_ENTRY = {  # an entry as manifests were written before LoRA existed (no "lora" key, no "adapters" list)
    "file": "Gemma3-Custom-IT_prefill-seq32_q8_ekv128.task",
    "bytes": 10,
    "sha256": "0" * 64,
    "model": "gemma3-custom",
    "quantization": "dynamic_int8",
    "ekv": 128,
    "prefill_lengths": [32],
    "target": "android-cpu",
    "format": "task",
    "instruction_tuned": True,
    "start_token": "<bos>",
    "stop_tokens": ["<eos>", "<end_of_turn>"],
    "prompt_template": {"user_prefix": "", "user_suffix": "", "model_prefix": "", "model_suffix": ""},
    "checkpoint": {"ref": "/x", "fingerprint": "f"},
    "spec_fingerprint": "s",
    "tool_versions": {},
    "build_seconds": 1.0,
    "peak_rss_bytes": 1,
    "created_utc": "2026-11-23T00:00:00Z",
    "extra": {},
}


def test_old_manifests_load_and_lora_records_round_trip(tmp_path: Path) -> None:
    from sdk_build.artifacts.manifest import AdapterEntry, load_manifest, update_manifest, update_manifest_adapter

    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "bundles": [_OLD_ENTRY]}))
    manifest = load_manifest(tmp_path)
    assert manifest.bundles[0].lora is None and manifest.adapters == []
    entry = manifest.bundles[0]
    entry.lora = {"mode": "runtime", "rank": 16}
    update_manifest(tmp_path, entry)
    update_manifest_adapter(
        tmp_path,
        AdapterEntry(
            file="x_lora-r16.tflite",
            bytes=1,
            sha256="0" * 64,
            rank=16,
            lora={"fingerprint": "f"},
            base={"ref": "r", "fingerprint": "b"},
            bundles=[entry.file],
            created_utc="2026-11-23T00:00:00Z",
        ),
    )
    again = load_manifest(tmp_path)
    assert again.find(entry.file).lora == {"mode": "runtime", "rank": 16}
    assert [a.file for a in again.adapters_for(entry.file)] == ["x_lora-r16.tflite"]
    assert again.adapters_for("other.task") == []
    update_manifest(tmp_path, again.bundles[0])  # a plain bundle update keeps the adapters list
    assert load_manifest(tmp_path).adapters
    broken = json.loads((tmp_path / "manifest.json").read_text())
    del broken["bundles"][0]["sha256"]
    (tmp_path / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(BuildError, match=r"lacks \['sha256'\]"):
        load_manifest(tmp_path)
