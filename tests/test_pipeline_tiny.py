"""Real conversions of a tiny Gemma-3-shaped model through every stage: export, quantize, bundle, manifest, verify."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sdk_build.artifacts.manifest import load_manifest, sha256_file
from sdk_build.artifacts.runtime_memory import window_kv_cache_default
from sdk_build.convert.export import ExportOptions
from sdk_build.errors import BuildError, SourceError
from sdk_build.pipeline import build
from sdk_build.sources import resolve_checkpoint
from sdk_build.spec import make_variant
from sdk_build.verify import DEFAULT_PROMPTS, verify_bundle


def test_tiny_bundles_are_whole_and_recorded(tiny_bundle_dir: Path) -> None:
    manifest = load_manifest(tiny_bundle_dir)
    formats = sorted(entry.format for entry in manifest.bundles)
    assert formats == ["litertlm", "task"]
    for entry in manifest.bundles:
        path = tiny_bundle_dir / entry.file
        assert path.stat().st_size == entry.bytes
        assert sha256_file(path) == entry.sha256
        assert entry.quantization == "dynamic_int8" and entry.ekv == 256 and entry.prefill_lengths == [32, 128]
        assert entry.instruction_tuned and entry.prompt_template["user_prefix"] == "<start_of_turn>user\n"
        assert entry.tool_versions["litert-torch"] == "0.10.0"
        assert entry.peak_rss_bytes > 100 * 2**20 and entry.build_seconds > 0
        assert path.stat().st_mode & 0o044, "bundles must be readable by the web server"
    task = next(e for e in manifest.bundles if e.format == "task")
    raw = (tiny_bundle_dir / task.file).read_bytes()
    assert raw[:4] == b"\0\0\0\0"
    with zipfile.ZipFile(tiny_bundle_dir / task.file) as archive:
        assert {"TF_LITE_PREFILL_DECODE", "TOKENIZER_MODEL", "METADATA"} <= set(archive.namelist())
    assert not [p for p in tiny_bundle_dir.iterdir() if ".partial" in p.name or p.name.startswith(".build-")]


@pytest.mark.parametrize("fmt", ["task", "litertlm"])
def test_int8_bundle_agrees_with_fp32_reference(
    tiny_window_bundle_dir: Path, gemma_edge_cache: Path, fmt: str
) -> None:
    entry = next(e for e in load_manifest(tiny_window_bundle_dir).bundles if e.format == fmt)
    report = verify_bundle(tiny_window_bundle_dir / entry.file, cache_dir=gemma_edge_cache, new_tokens=12)
    assert report.passed, report.problems
    assert report.top1_agreement >= 0.9
    assert all(result.bundle_tokens for result in report.results)
    # The default prompts end with one longer than the sliding window: this android-cpu bundle's ring caches wrap.
    assert entry.extra["export_options"]["window_kv_cache"] is True
    assert len(report.results) == len(DEFAULT_PROMPTS) + 1
    assert report.results[-1].forced_positions > 0 and report.results[-1].prompt not in DEFAULT_PROMPTS


def test_recipes_share_one_export_and_order_by_size(
    tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    """One float export per (ekv, prefill set); each recipe only quantizes it. Sizes follow the bit widths."""
    sizes: dict[str, int] = {}
    for recipe in ["fp32", "dynamic_int8", "dynamic_int4_block32", "dynamic_int4_block32_all", "int4_qat"]:
        outcome = build(str(tiny_checkpoint_dir), make_variant(recipe, 128, [32]), tmp_path,
                        cache_dir=gemma_edge_cache, allow_custom_shape=True)
        sizes[recipe] = outcome.entries[0].extra["tflite_bytes"]
    # This checkpoint's exports only: other tests (LoRA) share the session cache with their own checkpoints/options.
    fingerprint = outcome.entries[0].checkpoint["fingerprint"]
    # android-cpu, but at ekv 128 / prefill 32 the ring's plan costs more than the KV it saves: full caches
    shape = resolve_checkpoint(str(tiny_checkpoint_dir), None, allow_custom_shape=True).shape
    assert not window_kv_cache_default(["android-cpu"], shape, 128, [32])
    key = ExportOptions().key()
    exports = list((gemma_edge_cache / "exports").glob(f"{fingerprint}_ekv128_p32_{key}_*.tflite"))
    assert len(exports) == 1
    assert sizes["fp32"] > max(v for k, v in sizes.items() if k != "fp32")
    assert sizes["fp32"] > 1.8 * sizes["dynamic_int8"] and sizes["int4_qat"] < sizes["dynamic_int8"]
    # int8 embedding (512 x 64) instead of int4 blocks: the mixed recipe is larger by about half the table.
    assert sizes["dynamic_int4_block32"] - sizes["dynamic_int4_block32_all"] > 512 * 64 * 0.4
    report = verify_bundle(tmp_path / outcome.entries[0].file, cache_dir=gemma_edge_cache, new_tokens=8)
    assert report.passed, report.problems


def test_unchanged_inputs_are_not_rebuilt_and_changed_ones_are(
    tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    import shutil

    variant = make_variant("dynamic_int8", 128, [32])
    first = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    again = build(str(tiny_checkpoint_dir), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    assert not first.skipped and again.skipped
    changed = shutil.copytree(tiny_checkpoint_dir, tmp_path / "changed")
    from sdk_build.sources.tiny_checkpoint import make_tiny_checkpoint

    make_tiny_checkpoint(changed, seed=1)
    rebuilt = build(str(changed), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    assert not rebuilt.skipped
    assert rebuilt.entries[0].sha256 != first.entries[0].sha256


def test_failed_build_leaves_nothing_that_looks_complete(
    tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    import shutil

    broken = shutil.copytree(tiny_checkpoint_dir, tmp_path / "broken")
    (broken / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="is not a SentencePiece model"):
        build(str(broken), make_variant("dynamic_int8", 128, [32]), out, cache_dir=gemma_edge_cache,
              allow_custom_shape=True)
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [name for name in leftovers if name.endswith((".task", ".litertlm")) and not name.startswith(".")]
    assert not load_manifest(out).bundles


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sdk_build", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "--recipe", "int3", "--ekv", "1024"], "invalid choice: 'int3' (choose from 'fp32', 'dynamic_int8'"),
        (["build", "--recipe", "dynamic_int8", "--ekv", "1024", "--prefill", "2048"], "ekv 1024 is smaller"),
        (["build", "--checkpoint", "/no/such/dir", "--recipe", "dynamic_int8", "--ekv", "64", "--prefill", "32"],
         "is not a folder"),
        (["build", "--recipe", "dynamic_int8", "--ekv", "-5"], "must be positive"),
    ],
)
def test_cli_bad_input_gives_one_clear_line(args: list[str], message: str) -> None:
    result = _cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_build_and_verify_tiny(tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path) -> None:
    common = ["--cache-dir", str(gemma_edge_cache)]
    result = _cli("build", "--checkpoint", str(tiny_checkpoint_dir), "--recipe", "dynamic_int8", "--ekv", "128",
                  "--prefill", "32", "--output", str(tmp_path), "--allow-custom-shape", *common)
    assert result.returncode == 0, result.stderr
    bundle = Path(result.stdout.split("\t")[0])
    assert bundle.name == "Gemma3-Custom-IT_prefill-seq32_q8_ekv128.task"
    verified = _cli("verify", str(bundle), "--json", "--tokens", "8", *common)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout[verified.stdout.index("{"):])
    assert report["passed"] and report["top1_agreement"] >= 0.9


def test_no_disk_space_is_reported(tmp_path: Path) -> None:
    from sdk_build.system.atomic import check_free_space

    with pytest.raises(BuildError, match="not enough disk space"):
        check_free_space(tmp_path, 10**18)
