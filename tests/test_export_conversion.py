"""The lightweight conversion (the export default) computes exactly what litert-torch's default conversion does.

Real exports of the tiny Gemma-3-shaped model both ways, each in its own export child, then the same comparison
`python -m bench.export_conversion` prints for the 270M and the 1B.
"""

from __future__ import annotations

from pathlib import Path

from bench.export_conversion import compare, export_once
from sdk_build.convert.export import ExportOptions
from sdk_build.sources import resolve_checkpoint

EKV, PREFILL = 256, (32,)


def test_lightweight_conversion_is_the_default() -> None:
    assert ExportOptions().lightweight_conversion
    assert "lightweight_conversion" not in ExportOptions().identity()  # caches made before it stay valid
    assert ExportOptions(lightweight_conversion=False).key() != ExportOptions().key()


def test_lightweight_and_default_conversions_give_the_same_graph_and_logits(
    tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    checkpoint = resolve_checkpoint(str(tiny_checkpoint_dir), gemma_edge_cache, allow_custom_shape=True)
    default, default_path = export_once(checkpoint, "default", EKV, PREFILL, tmp_path / "default")
    light, light_path = export_once(checkpoint, "lightweight", EKV, PREFILL, tmp_path / "lightweight")
    assert default_path != light_path, "the two settings must not share a cached export"
    assert default.peak_rss_bytes > 0 and light.peak_rss_bytes > 0

    result = compare(default_path, light_path)

    assert result.same_structure
    assert result.max_abs_logit_difference == 0.0 and result.same_argmax
