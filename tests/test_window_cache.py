"""Window-sized KV caches for the sliding-window layers: same logits as the full-length cache, the right tensors in
the bundle, and the right default per target.

The logits test drives the ring-cache decoder the way LiteRT-LM drives the exported graph (prefill signatures padded
with position 0 and masked rows, then single-token decode), far past the tiny model's 16-token window, and compares
it with litert-torch's own decoder holding every token. `sdk-build verify` then runs the exported bundle in
LiteRT-LM against the fp32 reference with a prompt longer than the window (tests/test_pipeline_tiny.py).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sdk_build.architecture import GEMMA3_1B, GEMMA3_270M
from sdk_build.artifacts.manifest import load_manifest
from sdk_build.artifacts.runtime_memory import window_kv_cache_default
from sdk_build.convert.export import ExportOptions
from sdk_build.convert.kv_cache import kv_layout
from sdk_build.errors import SpecError
from sdk_build.sources import resolve_checkpoint
from sdk_build.spec import Target

EKV = 256
# (prefill signature, real tokens): chunks shorter than, equal to and longer than the 16-token window, padded.
CHUNKS = [(32, 10), (128, 100), (32, 32), (32, 7), (32, 1), (32, 20)]
DECODE_STEPS = 40


def _runtime_mask(start: int, real: int, steps: int):
    """What LiteRT-LM fills: causal rows for the chunk's real tokens, every other row fully masked."""
    import torch

    mask = torch.full((1, 1, steps, EKV), torch.finfo(torch.float32).min)
    for row in range(real):
        mask[0, 0, row, : start + row + 1] = 0
    return mask


def _run(model, kv, tokens, start: int, real: int, steps: int):
    import torch

    ids = torch.zeros((1, steps), dtype=torch.int)
    ids[0, :real] = tokens
    positions = torch.zeros(steps, dtype=torch.int)  # LiteRT-LM zeroes the padding's positions
    positions[:real] = torch.arange(start, start + real)
    out = model(ids, positions, kv, mask=_runtime_mask(start, real, steps))
    return out["logits"][0, :real], out["kv_cache"]


def test_ring_caches_give_the_logits_of_full_caches(tiny_checkpoint_dir: Path) -> None:
    import torch
    from litert_torch.generative.layers import kv_cache as kv_utils

    from sdk_build.convert.model_loader import load_torch_model

    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), None, allow_custom_shape=True)
    full = load_torch_model(checkpoint, mask_cache_size=EKV)
    ring = load_torch_model(checkpoint, mask_cache_size=EKV, window_kv_cache=True)
    window = checkpoint.shape.sliding_window
    layout = kv_utils.KV_LAYOUT_TRANSPOSED
    full_kv = kv_utils.KVCache.from_model_config(EKV, full.config, kv_layout=layout)
    ring_kv = kv_utils.KVCache.from_model_config(EKV, ring.config, kv_layout=layout)
    assert [c.k_cache.shape[2] for c in ring_kv.caches] == list(kv_layout(checkpoint.shape, EKV, True).tokens_per_layer)
    assert min(c.k_cache.shape[2] for c in ring_kv.caches) == window < EKV

    generator = torch.Generator().manual_seed(1)
    total = sum(real for _, real in CHUNKS) + DECODE_STEPS
    tokens = torch.randint(4, checkpoint.shape.vocab_size, (total,), generator=generator)
    position, worst, scale = 0, 0.0, 0.0
    with torch.inference_mode():
        for steps, real in CHUNKS + [(1, 1)] * DECODE_STEPS:
            chunk = tokens[position : position + real]
            expected, full_kv = _run(full, full_kv, chunk, position, real, steps)
            got, ring_kv = _run(ring, ring_kv, chunk, position, real, steps)
            worst = max(worst, (expected - got).abs().max().item())
            scale = max(scale, expected.abs().max().item())
            position += real
    assert position > 8 * window  # the ring wrapped many times, within prefills and during decode
    assert scale > 1.0 and worst < 1e-4 * scale, f"ring logits differ by {worst} (logits up to {scale})"


def test_the_tiny_bundle_carries_window_sized_local_caches(tiny_window_bundle_dir: Path) -> None:
    """Built with window caches (conftest): the local layer's kv_cache inputs are the window long."""
    tiny_bundle_dir = tiny_window_bundle_dir
    from ai_edge_litert.interpreter import Interpreter

    entry = next(e for e in load_manifest(tiny_bundle_dir).bundles if e.format == "task")
    assert entry.extra["export_options"]["window_kv_cache"] is True
    with zipfile.ZipFile(tiny_bundle_dir / entry.file) as archive:
        interpreter = Interpreter(model_content=archive.read("TF_LITE_PREFILL_DECODE"))
    for signature in ("decode", "prefill_32", "prefill_128"):
        inputs = interpreter.get_signature_runner(signature).get_input_details()
        assert tuple(inputs["kv_cache_k_0"]["shape"]) == (1, 1, 16, 32)  # layer 0: sliding window of 16
        assert tuple(inputs["kv_cache_v_0"]["shape"]) == (1, 1, 32, 16)
        assert tuple(inputs["kv_cache_k_1"]["shape"]) == (1, 1, entry.ekv, 32)  # layer 1: global
        assert tuple(inputs["mask"]["shape"])[-1] == entry.ekv


def test_window_caches_by_default_only_where_verified_and_smaller() -> None:
    """android-cpu only, and only where the estimate says they save memory: the ring's plan costs P x (W + P)."""
    prefill = (32, 128, 512, 1280)
    assert window_kv_cache_default([Target.ANDROID_CPU], GEMMA3_1B, 4096, prefill)
    assert window_kv_cache_default(["android-cpu"], GEMMA3_270M, 4096, prefill)
    assert window_kv_cache_default(["android-cpu"], GEMMA3_270M, 1024, (32, 128))  # small prefill: small plan
    assert not window_kv_cache_default(["android-cpu"], GEMMA3_270M, 1280, prefill)  # measured: +63 MB
    assert not window_kv_cache_default(["android-cpu"], GEMMA3_1B, 1280, prefill)
    assert not window_kv_cache_default(["android-cpu"], GEMMA3_1B, 512, prefill)  # nothing beyond the window
    assert not window_kv_cache_default([Target.ANDROID_CPU, Target.ANDROID_GPU, Target.IOS], GEMMA3_1B, 4096, prefill)
    assert not window_kv_cache_default([Target.WEB_GPU], GEMMA3_1B, 4096, prefill)
    assert not window_kv_cache_default([], GEMMA3_1B, 4096, prefill)


def test_window_caches_have_their_own_export_key_and_refuse_runtime_lora() -> None:
    assert "window_kv_cache" not in ExportOptions().identity()  # exports made before the option keep their key
    assert ExportOptions(window_kv_cache=True).key() != ExportOptions().key()
    with pytest.raises(SpecError, match="runtime LoRA"):
        ExportOptions(window_kv_cache=True, lora_ranks=(4,))


def test_ring_is_used_only_when_the_window_is_smaller_than_the_cache(tiny_checkpoint_dir: Path) -> None:
    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), None, allow_custom_shape=True)
    window = checkpoint.shape.sliding_window
    assert kv_layout(checkpoint.shape, window, True) == kv_layout(checkpoint.shape, window, False)
    assert not kv_layout(checkpoint.shape, window, True).window_kv_cache
    assert kv_layout(checkpoint.shape, window + 1, True).tokens_per_layer == (window, window + 1)
