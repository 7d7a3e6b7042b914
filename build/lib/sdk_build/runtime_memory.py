"""How much memory a bundle needs on the device at run time, from the model's shape (not from measuring a phone).

App developers need this before they download a gigabyte: the catalog lists it per bundle, and the minimum
device memory derived from it, so an app can hide bundles a phone cannot run.

The estimate has three parts:

- **weights**: the bundle's size in bytes. The runtimes map the whole file (weights plus a tokenizer of a few
  MB); quantized weights stay quantized in memory (dynamic quantization: activations are quantized on the fly).
- **KV cache**: `2 (K and V) * layers * kv_heads * head_dim * ekv * 4 bytes`. litert-torch exports allocate a
  full `ekv`-token cache for every layer, sliding-window layers included, and its tensors are float32
  (`kv_cache_k_<i>` / `kv_cache_v_<i>` signature inputs of shape [1, 1, ekv, head_dim] for Gemma 3's one KV
  head; tests/test_catalog.py checks this against the tensors of a real bundle). The CPU runtime (XNNPACK)
  keeps them float32; a GPU delegate running in F16 may halve them, so float32 is the upper bound.
- **activations**: the largest live tensors of the largest prefill signature P against the cache E, float32:
  attention scores (heads * P * E), the mask input (P * E), gate and up projections (2 * P * ffn), a few
  hidden-state copies (4 * P * hidden), q/k/v (P * head_dim * (heads + 2 kv_heads)), and the decode logits
  (vocab).

**Minimum device memory** = (weights + KV cache + activations) * HEADROOM_FACTOR, rounded up to a whole GiB.
The factor 2 is the rule that an app can count on about half of a phone's RAM before Android's low-memory
killer or iOS's per-app limit ends it, the rest going to the OS and other apps; the same rule is what the web
demo applies to `navigator.deviceMemory`. On the CPU, XNNPACK also writes a repacked copy of the weights to a
cache file beside the bundle (about the weights' size) and maps it: file-backed pages the OS can drop, which
count in RSS but sit inside that headroom. Measured on this x86 host with LiteRT-LM (CPU, 2 threads), peak
RSS was 512 MB for the 270M int8 ekv1024 bundle (estimate 362 MB, minimum 1 GiB) and 1045 MB for the 1B int4
ekv2048 bundle (estimate 819 MB, minimum 2 GiB).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from sdk_build.architecture import ModelShape

KV_CACHE_DTYPE = "float32"
KV_BYTES_PER_ELEMENT = 4
ACTIVATION_BYTES_PER_ELEMENT = 4
HEADROOM_FACTOR = 2
GIB = 2**30


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    activations_bytes: int

    @property
    def runtime_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activations_bytes

    @property
    def min_device_memory_bytes(self) -> int:
        return math.ceil(self.runtime_bytes * HEADROOM_FACTOR / GIB) * GIB

    def to_dict(self) -> dict[str, int | str]:
        return {
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "kv_cache_dtype": KV_CACHE_DTYPE,
            "activations_bytes": self.activations_bytes,
            "estimated_runtime_bytes": self.runtime_bytes,
            "min_device_memory_bytes": self.min_device_memory_bytes,
        }


def kv_cache_bytes(shape: ModelShape, ekv: int) -> int:
    """K and V for every layer, `ekv` tokens each, float32 (litert-torch's KV cache for Gemma 3)."""
    return 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * ekv * KV_BYTES_PER_ELEMENT


def activation_bytes(shape: ModelShape, ekv: int, prefill_lengths: Sequence[int]) -> int:
    """Largest live float32 tensors while running the largest prefill signature (see the module docstring)."""
    p = max(prefill_lengths)
    elements = (
        shape.num_heads * p * ekv  # attention scores
        + p * ekv  # mask input
        + 2 * p * shape.intermediate_size  # gate and up projections
        + 4 * p * shape.hidden_size  # residual, normed input, attention output, FFN output
        + p * shape.head_dim * (shape.num_heads + 2 * shape.num_kv_heads)  # q, k, v
        + shape.vocab_size  # decode logits
    )
    return elements * ACTIVATION_BYTES_PER_ELEMENT


def estimate(shape: ModelShape, bundle_bytes: int, ekv: int, prefill_lengths: Sequence[int]) -> MemoryEstimate:
    return MemoryEstimate(
        weights_bytes=int(bundle_bytes),
        kv_cache_bytes=kv_cache_bytes(shape, ekv),
        activations_bytes=activation_bytes(shape, ekv, prefill_lengths),
    )
