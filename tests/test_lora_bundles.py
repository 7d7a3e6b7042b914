"""LoRA through the real pipeline on the tiny model: fused and runtime bundles run in LiteRT-LM and compared, greedy,
with Hugging Face transformers' model with the adapter applied unfused (tests/lora_support.py), and the CLI/matrix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lora_support import hf_greedy

from sdk_build.artifacts.manifest import load_manifest, sha256_file
from sdk_build.compose import build
from sdk_build.lora.adapter import GEMMA3_MODULES, load_adapter
from sdk_build.lora.spec import make_lora_spec
from sdk_build.lora.synthetic import write_random_adapter
from sdk_build.spec import make_variant
from sdk_build.verify import verify_bundle

PROMPTS = ("The quick brown fox", "Gemma runs on phones")
NEW_TOKENS = 8
EKV = 128


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint_dir: Path):
    from sdk_build.sources import resolve_checkpoint

    return resolve_checkpoint(str(tiny_checkpoint_dir), allow_custom_shape=True)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory, tiny) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        # every linear layer, rank 4: only fusion can carry the MLP part
        "all": write_random_adapter(
            root / "all-modules", tiny.shape, rank=4, alpha=8, modules=GEMMA3_MODULES, strength=1.0, seed=1
        ),
        # attention only, rank 8: runtime mode pads it to LiteRT-LM's rank 16
        "attn": write_random_adapter(root / "attention", tiny.shape, rank=8, alpha=16, strength=1.0, seed=2),
        "zero": write_random_adapter(root / "zero", tiny.shape, rank=8, alpha=16, strength=0.0, seed=3),
    }


def _hf_texts(tiny, adapter_dir: Path | None) -> list[str]:
    import sentencepiece as spm

    tokenizer = spm.SentencePieceProcessor(model_file=str(tiny.tokenizer_path))
    return [
        tokenizer.decode(hf_greedy(tiny.directory, [tokenizer.bos_id(), *tokenizer.encode(p)], NEW_TOKENS, adapter_dir))
        for p in PROMPTS
    ]


def _bundle_texts(bundle: Path, adapter_file: Path | None = None, rank: int = 16) -> list[str]:
    from sdk_build.lora.verify import open_lora_engine
    from sdk_build.verify import bundle_greedy, open_engine

    engine = open_lora_engine(bundle, EKV, 2, rank, adapter_file) if adapter_file else open_engine(bundle, EKV, 2)
    try:
        results = bundle_greedy(engine, list(PROMPTS), NEW_TOKENS)
    finally:
        engine.close()
    assert not [error for _, error in results if error]
    return [text for text, _ in results]


def test_fused_bundle_equals_pytorch_with_adapter_and_differs_from_base(
    tiny, adapters: dict[str, Path], gemma_edge_cache: Path, tmp_path: Path
) -> None:
    variant = make_variant("fp32", EKV, [32])
    base = build(str(tiny.directory), variant, tmp_path, cache_dir=gemma_edge_cache, allow_custom_shape=True)
    fused = build(
        str(tiny.directory),
        variant,
        tmp_path,
        cache_dir=gemma_edge_cache,
        allow_custom_shape=True,
        lora=make_lora_spec(adapters["all"]),
    )
    base_entry, entry = base.entries[0], fused.entries[0]
    assert entry.file == "Gemma3-Custom-IT_prefill-seq32_f32_ekv128_lora-all-modules.task"

    with_adapter, without = _bundle_texts(tmp_path / entry.file), _bundle_texts(tmp_path / base_entry.file)
    assert with_adapter == _hf_texts(tiny, adapters["all"])
    assert without == _hf_texts(tiny, None)
    assert all(a != b for a, b in zip(with_adapter, without)), "the adapter must change every answer"
    # Fused costs exactly what the base costs: the same graph and tensor sizes, only the values differ.
    from bench.tflite_graph import structure_digest

    assert entry.extra["tflite_bytes"] == base_entry.extra["tflite_bytes"]
    assert structure_digest(tmp_path / entry.file) == structure_digest(tmp_path / base_entry.file)

    adapter = load_adapter(adapters["all"], tiny.shape)
    recorded = load_manifest(tmp_path).find(entry.file)
    assert recorded.lora["mode"] == "fused" and recorded.lora["fingerprint"] == adapter.fingerprint
    assert recorded.lora["rank"] == 4 and recorded.lora["target_modules"] == list(GEMMA3_MODULES)
    assert recorded.checkpoint == {"ref": str(tiny.directory), "fingerprint": tiny.fingerprint}
    assert load_manifest(tmp_path).find(base_entry.file).lora is None

    report = verify_bundle(tmp_path / entry.file, cache_dir=gemma_edge_cache, new_tokens=NEW_TOKENS)
    assert report.passed and report.top1_agreement == 1.0, report.problems
    again = build(
        str(tiny.directory),
        variant,
        tmp_path,
        cache_dir=gemma_edge_cache,
        allow_custom_shape=True,
        lora=make_lora_spec(adapters["all"]),
    )
    assert again.skipped


@pytest.mark.slow
def test_runtime_bundle_runs_the_adapter_file_in_litert_lm(
    tiny, adapters: dict[str, Path], gemma_edge_cache: Path, tmp_path: Path
) -> None:
    outcome = build(
        str(tiny.directory),
        make_variant("fp32", EKV, [32]),
        tmp_path,
        cache_dir=gemma_edge_cache,
        allow_custom_shape=True,
        lora=make_lora_spec(adapters["attn"], "runtime"),
    )
    entry = outcome.entries[0]
    assert entry.file == "Gemma3-Custom-IT_prefill-seq32_f32_ekv128_lora-r16.task"
    assert entry.lora == {"mode": "runtime", "rank": 16}
    from bench.tflite_graph import model_bytes
    from sdk_build.lora.signatures import signature_keys

    model = tmp_path / "model.tflite"
    model.write_bytes(model_bytes(tmp_path / entry.file))
    assert signature_keys(model) == ["prefill_32", "decode"], "LiteRT-LM binds LoRA inputs on these names only"
    manifest = load_manifest(tmp_path)
    (listed,) = manifest.adapters_for(entry.file)
    adapter_file = tmp_path / listed.file
    assert adapter_file == outcome.adapter_file and listed.sha256 == sha256_file(adapter_file)
    assert listed.rank == 16 and listed.lora["rank"] == 8 and listed.base["fingerprint"] == tiny.fingerprint

    assert _bundle_texts(tmp_path / entry.file, adapter_file) == _hf_texts(tiny, adapters["attn"])
    # "Without the adapter" on a runtime bundle is an all-zero adapter (LiteRT-LM leaves unset LoRA inputs as they are).
    from sdk_build.lora.litert_lora import write_adapter_file

    zero = write_adapter_file(load_adapter(adapters["zero"], tiny.shape), tiny.shape, tmp_path / "zero.tflite", 16)
    assert _bundle_texts(tmp_path / entry.file, zero) == _hf_texts(tiny, None)

    report = verify_bundle(tmp_path / entry.file, cache_dir=gemma_edge_cache, new_tokens=NEW_TOKENS)
    assert report.passed and report.top1_agreement == 1.0, report.problems


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sdk_build", *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_cli_refuses_bad_lora_requests_in_one_line(tiny, adapters: dict[str, Path], tmp_path: Path) -> None:
    common = [
        "build",
        "--checkpoint",
        str(tiny.directory),
        "--allow-custom-shape",
        "--recipe",
        "fp32",
        "--ekv",
        "128",
        "--prefill",
        "32",
        "--output",
        str(tmp_path),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    broken = tmp_path / "broken"
    write_random_adapter(broken, tiny.shape, rank=4)
    config = json.loads((broken / "adapter_config.json").read_text())
    del config["lora_alpha"]
    (broken / "adapter_config.json").write_text(json.dumps(config))
    cases = [
        (["--lora", str(broken)], "has no 'lora_alpha'"),
        (
            ["--lora", str(adapters["attn"]), "--lora-mode", "runtime", "--target", "web-gpu"],
            "runtime LoRA is not available for web-gpu",
        ),
        (["--lora", str(adapters["all"]), "--lora-mode", "runtime"], "also targets gate_proj, up_proj, down_proj"),
        (["--lora-mode", "runtime"], "--lora-mode needs --lora PEFT_DIR"),
        (["--lora", str(tmp_path / "nowhere")], "does not exist"),
    ]
    for extra, message in cases:
        result = _cli(*common, *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.task")), "nothing may be built for a refused adapter"


def test_cli_build_and_matrix_with_a_fused_adapter(
    tiny, adapters: dict[str, Path], gemma_edge_cache: Path, tmp_path: Path
) -> None:
    """Reuses the fused float export of the test above (same adapter, same cache): only quantizing and bundling."""
    result = _cli(
        "build",
        "--checkpoint",
        str(tiny.directory),
        "--allow-custom-shape",
        "--recipe",
        "dynamic_int8",
        "--ekv",
        "128",
        "--prefill",
        "32",
        "--output",
        str(tmp_path / "cli"),
        "--cache-dir",
        str(gemma_edge_cache),
        "--lora",
        str(adapters["all"]),
        "--lora-mode",
        "fused",
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.split("\t")[0]).name == "Gemma3-Custom-IT_prefill-seq32_q8_ekv128_lora-all-modules.task"

    from sdk_build.executors import run_matrix
    from sdk_build.matrix import load_matrix

    path = tmp_path / "matrix.toml"
    path.write_text(
        'default_prefill_lengths = [32]\n[targets.android-cpu]\nvariants = [{ recipe = "dynamic_int8", '
        'ekv = 128 }]\n[targets.web-gpu]\nvariants = [{ recipe = "dynamic_int8", ekv = 128, '
        'output_name = "tiny-int8-web" }]\n'
    )
    outcomes = run_matrix(
        str(tiny.directory),
        load_matrix(path),
        tmp_path / "m",
        cache_dir=gemma_edge_cache,
        allow_custom_shape=True,
        lora=make_lora_spec(adapters["all"]),
    )
    assert not [o.error for o in outcomes if o.error]
    assert sorted(f for o in outcomes for f in o.files) == [
        "Gemma3-Custom-IT_prefill-seq32_q8_ekv128_lora-all-modules.task",
        "tiny-int8-web_lora-all-modules.task",
    ]
    entry = load_manifest(tmp_path / "m").find("tiny-int8-web_lora-all-modules.task")
    assert entry.lora["mode"] == "fused" and entry.extra["targets"] == ["web-gpu"]
    from sdk_build.spec import Target

    (web,) = run_matrix(
        str(tiny.directory),
        load_matrix(path),
        tmp_path / "r",
        cache_dir=gemma_edge_cache,
        allow_custom_shape=True,
        only=(Target.WEB_GPU,),
        lora=make_lora_spec(adapters["attn"], "runtime"),
    )
    assert "runtime LoRA is not available for web-gpu" in web.error and not web.files
