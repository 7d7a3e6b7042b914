"""What a bundle's KV cache holds: tokens per layer (window-sized sliding-window layers or not) and bytes per backend.

One description shared by the export (which layers get ring caches), the catalog (what the runtime will allocate) and
the tests (which check it against the `kv_cache_*` tensors of real bundles). It imports nothing heavy.

Which builds get window-sized caches by default (`window_kv_cache_default`): those whose every target runs them
where `sdk-build verify` has checked them, i.e. LiteRT-LM on the CPU (`android-cpu`), and only where they save
memory by the catalog's own estimate. A file that is also meant for a GPU executor (LiteRT-LM's GPU backend,
MediaPipe on Android, iOS or the web) keeps full-length caches: the ring buffer's gather/select ops and its position
bookkeeping have not been run there. The saving is not automatic: the ring's mask and write plan cost memory in
every prefill (`sdk_build.artifacts.runtime_memory.RING_PLAN_TENSORS`), which on the real 270M outweighs the KV it saves at ekv
1280 (measured +63 MB) and not at ekv 4096 (measured -35 MB).
"""

from __future__ import annotations

import dataclasses

from sdk_build.architecture import ModelShape
from sdk_build.spec import Target

WINDOW_KV_TARGETS = frozenset({Target.ANDROID_CPU})
"""Targets whose runtime has run window-cached bundles through `sdk-build verify` (LiteRT-LM CPU)."""

KV_DTYPE_BYTES = {"float32": 4, "float16": 2}
BACKEND_KV_DTYPE = {"cpu": "float32", "gpu": "float16"}
"""The KV cache dtype each backend keeps. litert-torch exports float32 `kv_cache_*` tensors; the CPU (XNNPACK) keeps
them so; GPU executors run in F16 by default (MediaPipe's web page falls back to F32 without `shader-f16`, so a web
bundle's GPU figure is the F16 one and its F32 fallback equals the CPU figure)."""


def is_global_layer(shape: ModelShape, index: int) -> bool:
    """Gemma 3: every `sliding_window_pattern`-th layer attends globally, the others over the sliding window."""
    return (index + 1) % shape.sliding_window_pattern == 0


@dataclasses.dataclass(frozen=True)
class KvLayout:
    """Tokens the KV cache of each layer holds."""

    tokens_per_layer: tuple[int, ...]
    window_kv_cache: bool

    @property
    def slots(self) -> int:
        """Token slots over all layers (each slot: K and V of every KV head)."""
        return sum(self.tokens_per_layer)

    def bytes(self, shape: ModelShape, dtype: str = "float32") -> int:
        return 2 * self.slots * shape.num_kv_heads * shape.head_dim * KV_DTYPE_BYTES[dtype]

    def to_dict(self, shape: ModelShape) -> dict[str, object]:
        local = [t for i, t in enumerate(self.tokens_per_layer) if not is_global_layer(shape, i)]
        global_ = [t for i, t in enumerate(self.tokens_per_layer) if is_global_layer(shape, i)]
        return {
            "window_sized_local_layers": self.window_kv_cache,
            "local_layers": len(local),
            "local_layer_tokens": max(local, default=0),
            "global_layers": len(global_),
            "global_layer_tokens": max(global_, default=0),
            "token_slots": self.slots,
        }


def kv_layout(shape: ModelShape, ekv: int, window_kv_cache: bool) -> KvLayout:
    """`ekv` tokens for every layer, or the window for sliding-window layers when that is smaller (ring caches)."""
    window = shape.sliding_window if window_kv_cache and 0 < shape.sliding_window < ekv else ekv
    tokens = tuple(ekv if is_global_layer(shape, i) else window for i in range(shape.num_layers))
    return KvLayout(tokens, window_kv_cache and window < ekv)
