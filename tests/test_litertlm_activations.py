"""A web-gpu `.litertlm` asks LiteRT-LM's GPU backend for float32 activations; other targets leave its default.

@litert-lm/core 0.17.1 has no activation setting: the file's decoder section (`prefer_activation_type`) is the
only way to keep the real 270M from decoding textless tokens in float16 on an adapter without shader-f16.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

TINY_EKV, TINY_PREFILL = 256, (32, 128)  # as tests/conftest.py: its cached float export is reused


def _decoder_metadata(litertlm: Path, workdir: Path) -> dict[str, str]:
    cli = Path(sys.executable).with_name("litert-lm")
    out = workdir / "unpacked"
    subprocess.run([str(cli), "unpack", str(litertlm), "--output-dir", str(out)], check=True, capture_output=True,
                   timeout=120)
    config = tomllib.loads((out / "model.toml").read_text())
    (decoder,) = [s for s in config["section"] if s.get("section_type") == "TFLiteModel"]
    assert decoder["model_type"] == "prefill_decode"
    return {item["key"]: item["value"] for item in decoder.get("additional_metadata", [])}


def test_web_gpu_litertlm_prefers_float32_activations(tiny_checkpoint_dir: Path, gemma_edge_cache: Path,
                                                      tmp_path: Path) -> None:
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    found = {}
    for target in ("web-gpu", "android-gpu"):
        variant = make_variant("dynamic_int8", TINY_EKV, TINY_PREFILL, formats=["litertlm"], target=target)
        outcome = build(str(tiny_checkpoint_dir), variant, tmp_path / target, cache_dir=gemma_edge_cache,
                        allow_custom_shape=True)
        (entry,) = outcome.entries
        found[target] = _decoder_metadata(tmp_path / target / entry.file, tmp_path / f"{target}-unpacked")
    assert found["web-gpu"].get("prefer_activation_type") == "fp32"
    assert "prefer_activation_type" not in found["android-gpu"]
