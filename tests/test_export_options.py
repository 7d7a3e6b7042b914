"""Export options: what names an export (cache key, bundle fingerprint) and the sizes written into the graph."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from sdk_build.convert.export import ExportOptions, export_sizes


def test_options_added_later_keep_old_keys_valid() -> None:
    # The key every export cached before gpu_dynamic_shapes existed was the hash of these three fields.
    before = {"mask_as_input": True, "transposed_kv_cache": True, "lora_ranks": ()}
    old_key = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert ExportOptions().key() == old_key
    assert "gpu_dynamic_shapes" not in ExportOptions().identity()


def test_gpu_dynamic_shapes_names_a_different_export() -> None:
    gpu = ExportOptions(gpu_dynamic_shapes=True)
    assert gpu.key() != ExportOptions().key()
    assert gpu.identity()["gpu_dynamic_shapes"] is True
    assert dataclasses.replace(gpu, gpu_dynamic_shapes=False).key() == ExportOptions().key()


def test_export_sizes_use_litert_torch_magic_primes_only_when_asked() -> None:
    assert export_sizes((32, 128, 512), 1280, ExportOptions()) == ((32, 128, 512), 1280)
    prefill, ekv = export_sizes((32, 128, 512), 1280, ExportOptions(gpu_dynamic_shapes=True))
    assert (prefill, ekv) == ((37, 131, 521), 1283)
