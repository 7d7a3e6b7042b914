"""How much memory a bundle needs on the device at run time: what the runtime allocates for it, from the model's
shape, the recipe and the bundle's KV cache layout (not from measuring a phone).

App developers need this before they download a gigabyte: the catalog lists it per bundle, and the minimum device
memory derived from it, so an app can hide bundles a phone cannot run. `tests/test_runtime_memory.py` checks it
against the peak RSS LiteRT-LM reaches on this host (270M and 1B, ekv 1280 and 4096, both KV layouts, both formats;
the figures are in README "Memory", from `python -m bench.kv_window`).

The parts, per backend:

- **weights**: on a GPU, the bundle's bytes (the engine uploads them from the mapped file). On the CPU, none of
  them as such: XNNPACK reads each fully connected weight once to pack it and then runs from the packed copy, and the
  embedding lookup touches only the rows of the tokens seen (measured: a later launch of the 1B q8 file keeps about
  110 MiB of its 1 GB resident; the rest is `RUNTIME_RESIDENT_BYTES`).
- **weight cache** (CPU only): XNNPACK repacks every fully connected weight (the transformer's projections and the
  LM head, which is Gemma's tied embedding table) into its own layout: on a first launch in memory while it writes
  the cache file, on later launches by mapping that file. Estimated as those matrices at the recipe's width (int8
  for the projections a mixed recipe keeps at int8) plus per-output-channel scales (`weight_cache_bytes`). A first
  launch holds the packed LM head a second time (`first_launch_bytes`: measured 165 MiB more than a later launch
  on the 270M, 294 MiB on the 1B, against 162 and 290 MiB of packed head).
- **runtime**: `RUNTIME_RESIDENT_BYTES`, the same for every bundle (fitted).
- **KV cache**: `2 (K and V) * token slots * kv_heads * head_dim * dtype bytes`, the token slots from
  `sdk_build.convert.kv_cache`: `ekv` per layer, or the 512-token window for sliding-window layers of bundles built with
  window caches. CPU (XNNPACK) keeps litert-torch's float32 tensors; GPU executors run F16 (MediaPipe's web page
  falls back to F32 without `shader-f16`: the float32 figure).
- **activations**: the largest live tensors of the largest prefill signature P, float32: attention scores
  (heads * P * E), the mask input (P * E), gate and up projections (2 * P * ffn), a few hidden-state copies
  (4 * P * hidden), q/k/v (P * head_dim * (heads + 2 kv_heads)), and the decode logits (vocab), where E is the
  longest attention span (ekv, or window + P for ring layers when that is longer); with window caches, plus the
  ring's mask and write plan (`RING_PLAN_TENSORS` tensors of P x (window + P), fitted to measurements).

The catalog's top-level figures are the upper bound over the ways a bundle may run (float32 KV, the weight cache
counted when the CPU is among its backends); `backends` gives each backend's own.

**Minimum device memory** = that upper bound * HEADROOM_FACTOR, rounded up to a whole GiB. The factor 2 is the rule
that an app can count on about half of a phone's RAM before Android's low-memory killer or iOS's per-app limit ends
it, the rest going to the OS and other apps; the same rule is what the web demo applies to `navigator.deviceMemory`.
It is a stated rule, not measured on phones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from sdk_build.architecture import ModelShape
from sdk_build.convert.kv_cache import BACKEND_KV_DTYPE, WINDOW_KV_TARGETS, KvLayout, kv_layout
from sdk_build.spec import Target

KV_CACHE_DTYPE = "float32"
"""The dtype of the catalog's top-level KV figure: what litert-torch exports and the CPU keeps (the upper bound)."""
ACTIVATION_BYTES_PER_ELEMENT = 4
HEADROOM_FACTOR = 2
GIB = 2**30

WEIGHT_BYTES = {"float32": 4.0, "int8": 1.0, "int4": 0.5}
SCALE_BYTES = {"per-channel": 0.0, "block-32": 2 / 32, "block-128": 2 / 128, "none": 0.0}
"""Packed bytes per weight: the integer itself, plus a bf16 scale per block for blockwise int4 (per-channel scales
are counted per output channel)."""
CHANNEL_BYTES = 8
"""Per output channel of a quantized matrix: a float32 scale and a float32 bias slot in XNNPACK's packed layout."""


def fully_connected_shapes(shape: ModelShape) -> tuple[list[tuple[str, tuple[int, int]]], tuple[int, int]]:
    """(kind, (out, in)) of the transformer's projections (all layers), kinds as in `Recipe.int8_projections`, and
    (out, in) of the LM head (the tied embedding table)."""
    h, d = shape.hidden_size, shape.head_dim
    per_layer = [
        ("attention", ((shape.num_heads + 2 * shape.num_kv_heads) * d, h)),  # q, k, v
        ("attention", (h, shape.num_heads * d)),  # attention output
        ("gate", (shape.intermediate_size, h)),
        ("up", (shape.intermediate_size, h)),
        ("down", (h, shape.intermediate_size)),
    ]
    return per_layer * shape.num_layers, (shape.vocab_size, h)


def packed_bytes(out_in: tuple[int, int], weights: str, granularity: str) -> int:
    """Bytes of one (out, in) matrix packed at `weights` width; an unknown width counts as float32 (upper bound)."""
    out, inputs = out_in
    weights = weights if weights in WEIGHT_BYTES else "float32"
    per_weight = WEIGHT_BYTES[weights] + (SCALE_BYTES.get(granularity, 0.0) if weights == "int4" else 0.0)
    channels = 0 if weights == "float32" else out * CHANNEL_BYTES
    return int(out * inputs * per_weight) + channels


def head_packed_bytes(shape: ModelShape, weights: str, granularity: str, embedding: str) -> int:
    """XNNPACK's packed copy of the LM head (Gemma's tied embedding table, at the embedding's width)."""
    _, head = fully_connected_shapes(shape)
    return packed_bytes(head, embedding, granularity if embedding == weights else "per-channel")


def weight_cache_bytes(shape: ModelShape, weights: str, granularity: str, embedding: str,
                       int8_projections: Sequence[str] = ()) -> int:
    """XNNPACK's repacked copy of the fully connected weights (see the module docstring); `int8_projections`: the
    kinds a mixed recipe keeps at int8 per-channel."""
    layers, _ = fully_connected_shapes(shape)
    transformer = sum(packed_bytes(m, "int8", "per-channel") if kind in int8_projections
                      else packed_bytes(m, weights, granularity) for kind, m in layers)
    return transformer + head_packed_bytes(shape, weights, granularity, embedding)


RUNTIME_RESIDENT_BYTES = 128 * 2**20
"""What LiteRT-LM holds for any bundle beyond the parts counted here: the engine's code pages, its tokenizer, session
and arena bookkeeping, the pages of the bundle it reads besides the packed weights (the embedding rows of the tokens
seen, norms, metadata). Fitted, not derived: the held memory of a later launch minus weight cache, KV cache and
activations is 121-136 MiB for both the real 270M and the 1B shape (`python -m bench.kv_window`, 2026-12-02),
the same for both models, so a constant."""


RING_PLAN_TENSORS = 8
"""Window caches only: the ring's attention runs over (W ring slots + the P chunk keys), and its mask and write plan
are built in the graph for every forward pass; LiteRT-LM's CPU arena holds about this many float32/int32 tensors of
P x (W + P) for it (slot visibility, chunk distances, the additive mask, scores, masked scores, softmax). Fitted, not
derived: the measured cost of window caches on the real 270M (`python -m bench.kv_window`, 2026-12-01, P = 1280:
held memory minus KV saved, 70-86 MB at ekv 1280 and 4096, the estimate below gives 73 MB)."""


def ring_plan_bytes(shape: ModelShape, prefill_lengths: Sequence[int], layout: KvLayout) -> int:
    """What the ring's mask and write plan add to the activations of the largest prefill (0 for full caches)."""
    rings = [t for t in layout.tokens_per_layer if t < max(layout.tokens_per_layer)]
    if not layout.window_kv_cache or not rings:
        return 0
    p = max(prefill_lengths)
    return RING_PLAN_TENSORS * p * (max(rings) + p) * ACTIVATION_BYTES_PER_ELEMENT


def activation_bytes(shape: ModelShape, ekv: int, prefill_lengths: Sequence[int], layout: KvLayout) -> int:
    """Largest live float32 tensors while running the largest prefill signature (see the module docstring)."""
    p = max(prefill_lengths)
    span = max([ekv] + [t + p for t in layout.tokens_per_layer if t < ekv])
    elements = (
        shape.num_heads * p * span  # attention scores
        + p * ekv  # mask input
        + 2 * p * shape.intermediate_size  # gate and up projections
        + 4 * p * shape.hidden_size  # residual, normed input, attention output, FFN output
        + p * shape.head_dim * (shape.num_heads + 2 * shape.num_kv_heads)  # q, k, v
        + shape.vocab_size  # decode logits
    )
    return elements * ACTIVATION_BYTES_PER_ELEMENT + ring_plan_bytes(shape, prefill_lengths, layout)


@dataclasses.dataclass(frozen=True)
class BackendMemory:
    kv_cache_dtype: str
    kv_cache_bytes: int
    weight_cache_bytes: int
    resident_weights_bytes: int
    runtime_bytes: int

    def to_dict(self) -> dict[str, int | str]:
        return {
            "kv_cache_dtype": self.kv_cache_dtype,
            "kv_cache_bytes": self.kv_cache_bytes,
            "weight_cache_bytes": self.weight_cache_bytes,
            "resident_weights_bytes": self.resident_weights_bytes,
            "estimated_runtime_bytes": self.runtime_bytes,
        }


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    shape: ModelShape
    layout: KvLayout
    weights_bytes: int
    weight_cache_bytes: int
    """XNNPACK's packed copy; counted for the CPU backend only."""
    first_launch_bytes: int
    """CPU, first launch only: the packed LM head, held in memory a second time while the cache file is written."""
    activations_bytes: int
    backends: tuple[str, ...]

    def resident_weights(self, name: str) -> int:
        """Bundle bytes the backend keeps resident: all of them on a GPU (uploaded from the mapped file); on the CPU
        only what XNNPACK does not pack (in `RUNTIME_RESIDENT_BYTES`), since it runs from its packed copy."""
        return 0 if name == "cpu" else self.weights_bytes

    def backend(self, name: str, kv_dtype: str | None = None) -> BackendMemory:
        dtype = kv_dtype or BACKEND_KV_DTYPE[name]
        kv = self.layout.bytes(self.shape, dtype)
        cache, first_launch = (self.weight_cache_bytes, self.first_launch_bytes) if name == "cpu" else (0, 0)
        resident = self.resident_weights(name)
        total = resident + cache + first_launch + kv + self.activations_bytes + RUNTIME_RESIDENT_BYTES
        return BackendMemory(dtype, kv, cache, resident, total)

    @property
    def kv_cache_bytes(self) -> int:
        return self.layout.bytes(self.shape, KV_CACHE_DTYPE)

    @property
    def counted_weight_cache_bytes(self) -> int:
        return self.weight_cache_bytes if "cpu" in self.backends else 0

    @property
    def runtime_bytes(self) -> int:
        """The upper bound over the bundle's backends, each with float32 KV (the web page's F32 fallback)."""
        return max(self.backend(name, KV_CACHE_DTYPE).runtime_bytes for name in self.backends)

    @property
    def min_device_memory_bytes(self) -> int:
        return math.ceil(self.runtime_bytes * HEADROOM_FACTOR / GIB) * GIB

    def to_dict(self) -> dict[str, object]:
        return {
            "weights_bytes": self.weights_bytes,
            "weight_cache_bytes": self.counted_weight_cache_bytes,
            "first_launch_bytes": self.first_launch_bytes if "cpu" in self.backends else 0,
            "runtime_resident_bytes": RUNTIME_RESIDENT_BYTES,
            "kv_cache_bytes": self.kv_cache_bytes,
            "kv_cache_dtype": KV_CACHE_DTYPE,
            "kv_cache": self.layout.to_dict(self.shape),
            "activations_bytes": self.activations_bytes,
            "estimated_runtime_bytes": self.runtime_bytes,
            "min_device_memory_bytes": self.min_device_memory_bytes,
            "backends": {name: self.backend(name).to_dict() for name in self.backends},
        }


def estimate(
    shape: ModelShape,
    bundle_bytes: int,
    ekv: int,
    prefill_lengths: Sequence[int],
    layout: KvLayout,
    quantization: tuple[str, str, str],
    backends: Sequence[str] = ("cpu",),
    int8_projections: Sequence[str] = (),
) -> MemoryEstimate:
    """`quantization`: (transformer weights, granularity, embedding), as in the catalog's `quantization` field;
    `int8_projections`: what a mixed recipe keeps at int8 (`Recipe.int8_projections`)."""
    weights, granularity, embedding = quantization
    return MemoryEstimate(
        shape=shape,
        layout=layout,
        weights_bytes=int(bundle_bytes),
        weight_cache_bytes=weight_cache_bytes(shape, weights, granularity, embedding, int8_projections),
        first_launch_bytes=head_packed_bytes(shape, weights, granularity, embedding),
        activations_bytes=activation_bytes(shape, ekv, prefill_lengths, layout),
        backends=tuple(sorted(set(backends))),
    )


def window_kv_cache_default(
    targets: Iterable[Target | str], shape: ModelShape, ekv: int, prefill_lengths: Sequence[int]
) -> bool:
    """Whether a file used by `targets` gets window-sized local KV caches unless the build says otherwise: all its
    targets run them where verified, and the estimated KV cache + activations are smaller with them."""
    wanted = {Target(t) for t in targets}
    if not wanted or not wanted <= WINDOW_KV_TARGETS:
        return False
    window, full = kv_layout(shape, ekv, True), kv_layout(shape, ekv, False)
    if not window.window_kv_cache:
        return False
    cost = {layout: layout.bytes(shape) + activation_bytes(shape, ekv, prefill_lengths, layout) for layout in (window, full)}
    return cost[window] < cost[full]
