"""Comparison logic on recorded results: like with like, tolerance, spread, history, and device identity."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from device_tests import verdicts as V
from device_tests.baselines import load_baselines
from device_tests.evaluate import evaluate
from device_tests.history import append_history, check_against_history, load_history, make_entry
from device_tests.lab import main as lab_main
from device_tests.policy import load_policy
from device_tests.record import BenchmarkResult, Environment, RunSample

S24 = Environment(
    surface="android",
    device="Samsung S24 Ultra",
    os="Android 14",
    backend="cpu",
    threads=4,
    extra={"model": "SM-S928B"},
)
HOST = Environment(
    surface="host", device="AMD EPYC", os="Debian 12", backend="cpu", threads=2, extra={"cpu_model": "AMD EPYC"}
)
M4_WEB = Environment(
    surface="web",
    device="Apple M4 Max",
    os="macOS 15",
    backend="gpu",
    browser="Chrome 140",
    adapter={"vendor": "apple", "architecture": "metal-3", "shaderF16": True},
)


def recorded(
    prefill: float | list[float],
    decode: float | list[float],
    *,
    env: Environment = S24,
    quantization: str = "dynamic_int8",
    ekv: int = 1280,
    model: str = "gemma3-1b",
    precision: str = "",
    prefill_tokens: int = 1024,
    decode_tokens: int = 256,
    file: str = "Gemma3-1B_multi-prefill-seq_q8_ekv1280.task",
    sha: str = "a" * 64,
) -> BenchmarkResult:
    """A result as a runner would have recorded it; scalars become 5 identical samples."""
    prefills = prefill if isinstance(prefill, list) else [prefill] * 5
    decodes = decode if isinstance(decode, list) else [decode] * 5
    return BenchmarkResult(
        bundle_file=file,
        bundle_sha256=sha,
        quantization=quantization,
        ekv=ekv,
        prefill_tokens=prefill_tokens,
        decode_tokens=decode_tokens,
        precision=precision,
        environment=dataclasses.replace(env),
        samples=[RunSample(p, d, ttft_s=1.0, init_s=0.5) for p, d in zip(prefills, decodes, strict=True)],
        model=model,
        bundle_format="task",
        prefill_signatures=[32, 128, 512, 1280],
    )


@pytest.fixture(scope="module")
def baselines():
    return load_baselines()


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def verdict_of(result, baselines, policy, history=None):
    return evaluate(result, baselines, policy, history).verdict


def test_baselines_file_has_every_published_figure(baselines):
    rows = {b.id: b for b in baselines.baselines}
    assert len([b for b in rows.values() if b.source.key == "seed001_android"]) == 11
    assert len([b for b in rows.values() if b.source.key == "seed001_web"]) == 5
    q8 = rows["s24u-cpu-q8-ekv1280"]
    assert (q8.published["prefill_tokens_per_s"], q8.published["decode_tokens_per_s"], q8.threads) == (177, 33, 4)
    assert (
        q8.published["ttft_s"] == 1.69
        and q8.published["cpu_rss_mib"] == 1341
        and q8.prefill_signatures == (32, 128, 512, 1280)
    )
    cpu, gpu = rows["litertlm-s24u-cpu-q4-ekv4096"], rows["litertlm-s24u-gpu-q4-ekv4096"]
    assert (cpu.published["prefill_tokens_per_s"], cpu.published["decode_tokens_per_s"]) == (243.24, 43.56)
    assert (gpu.published["prefill_tokens_per_s"], gpu.published["decode_tokens_per_s"]) == (1876.5, 44.57)
    assert (cpu.prefill_tokens, cpu.decode_tokens, cpu.ekv, cpu.published_quantization) == (
        1024,
        256,
        4096,
        "4-bit per-channel",
    )
    f16 = rows["m4max-web-int4-f16"]
    assert (f16.precision, f16.prefill_tokens, f16.decode_tokens, f16.ekv) == ("F16", 1024, 256, 1280)
    assert (
        f16.published["prefill_tokens_per_s"] == 4339
        and rows["m4max-web-int8-f32"].published["decode_tokens_per_s"] == 129
    )
    assert all(b.source.url.startswith("https://") for b in rows.values())


def test_slower_on_the_baselines_own_device_fails(baselines, policy):
    slow = recorded(177, 25)  # decode 25 < 33 * 0.9
    ev = evaluate(slow, baselines, policy)
    assert ev.verdict == V.FAIL
    (check,) = ev.check("baseline")
    assert check.reference == "s24u-cpu-q8-ekv1280"
    assert {m.metric: m.outcome for m in check.metrics}["decode_tokens_per_s"] == V.FAIL


def test_within_tolerance_on_own_device_passes(baselines, policy):
    assert verdict_of(recorded(160, 30), baselines, policy) == V.PASS  # 90.4% and 90.9% of 177/33


def test_device_identity(baselines, policy):
    bridge_label = dataclasses.replace(S24, device="samsung SM-S928B (SM8650)", extra={})
    assert verdict_of(recorded(177, 25, env=bridge_label), baselines, policy) == V.FAIL
    # android_bridge's stand-in phone runs on this host: never a published device, whatever its profile says.
    stand_in = dataclasses.replace(S24, device="gemma-edge stand-in SM-S928B", extra={"stand_in": True})
    assert verdict_of(recorded(177, 25, env=stand_in), baselines, policy) == V.DIFFERENT_DEVICE
    pixel = dataclasses.replace(S24, device="Google Pixel 8 Pro (Tensor G3)", extra={})
    assert verdict_of(recorded(177, 25, env=pixel), baselines, policy) == V.DIFFERENT_DEVICE


def test_far_slower_on_another_device_is_no_verdict_not_fail(baselines, policy):
    ev = evaluate(recorded(20, 2, env=HOST), baselines, policy)
    assert ev.verdict == V.DIFFERENT_DEVICE
    assert "Samsung S24 Ultra" in ev.checks[0].message and "AMD EPYC" in ev.checks[0].message
    assert {b.id for b in ev.references} >= {"s24u-cpu-q8-ekv1280"}


def test_like_with_like_only(baselines, policy):
    assert verdict_of(recorded(50, 5, model="gemma3-270m", ekv=1024), baselines, policy) == V.NO_BASELINE
    assert verdict_of(recorded(50, 5, ekv=2048), baselines, policy) == V.NO_BASELINE  # no q8 ekv2048 row
    gpu = dataclasses.replace(S24, backend="gpu")
    assert evaluate(recorded(1191, 24, env=gpu), baselines, policy).checks[0].reference == "s24u-gpu-q8-ekv1280"
    # Published on its own device, but under other conditions: no baseline, and the message says which.
    ev = evaluate(recorded(243.24, 43.56, quantization="int4_qat", ekv=4096, prefill_tokens=512), baselines, policy)
    assert ev.verdict == V.NO_BASELINE and "prefill 512 tokens vs published 1024" in ev.checks[0].message
    eight = dataclasses.replace(S24, threads=8)
    ev = evaluate(recorded(177, 33, env=eight), baselines, policy)
    assert ev.verdict == V.NO_BASELINE and "8 threads vs published 4" in ev.checks[0].message


def test_litert_lm_readme_rows(baselines, policy):
    ok = recorded(243.24, 43.56, quantization="int4_qat", ekv=4096)
    assert verdict_of(ok, baselines, policy) == V.PASS
    assert verdict_of(recorded(200, 43.56, quantization="int4_qat", ekv=4096), baselines, policy) == V.FAIL


def test_web_rows_match_precision_and_published_file(baselines, policy):
    kwargs = dict(env=M4_WEB, quantization="", ekv=1280, model="", file="gemma3-1b-it-int4-web.task")
    assert (
        evaluate(recorded(4339, 133, precision="F16", **kwargs), baselines, policy).checks[0].reference
        == "m4max-web-int4-f16"
    )
    assert verdict_of(recorded(2000, 133, precision="F32", **kwargs), baselines, policy) == V.FAIL  # 2837 published
    assert verdict_of(recorded(2837, 134, precision="F32", **kwargs), baselines, policy) == V.PASS
    swiftshader = dataclasses.replace(M4_WEB, device="AMD EPYC", adapter={"architecture": "swiftshader"})
    assert (
        verdict_of(recorded(3, 1, precision="F32", **{**kwargs, "env": swiftshader}), baselines, policy)
        == V.DIFFERENT_DEVICE
    )


def test_unsupported_f16_is_reported_not_failed(baselines, policy):
    result = recorded(0, 0, env=M4_WEB, precision="F16")
    result.samples, result.status, result.message = [], "unsupported", "unsupported on this adapter"
    ev = evaluate(result, baselines, policy)
    assert ev.verdict == V.UNSUPPORTED and not ev.failed


def test_tolerance_is_configurable(baselines, policy):
    slow = recorded(177, 25)
    assert verdict_of(slow, baselines, policy.with_overrides(tolerances={"decode_tokens_per_s": 0.30})) == V.PASS
    assert (
        verdict_of(recorded(175, 33), baselines, policy.with_overrides(tolerances={"prefill_tokens_per_s": 0.0}))
        == V.FAIL
    )
    # TTFT is informative by default; gated, a slower first token fails.
    late = recorded(177, 33)
    late.samples = [dataclasses.replace(s, ttft_s=2.5) for s in late.samples]
    assert verdict_of(late, baselines, policy) == V.PASS
    assert verdict_of(late, baselines, policy.with_overrides(gates={"ttft_s": True})) == V.FAIL


def test_wide_spread_is_unstable_not_pass_or_fail(baselines, policy):
    noisy = recorded([177, 100, 250, 140, 177], [33, 20, 40, 25, 33])
    ev = evaluate(noisy, baselines, policy)
    assert ev.verdict == V.UNSTABLE and not ev.failed
    assert verdict_of(noisy, baselines, policy.with_overrides(cv_limit=0.5)) in (V.PASS, V.FAIL)


def test_history_regression_against_last_good_run(tmp_path: Path, policy):
    path = tmp_path / "history.jsonl"
    first = recorded(600, 22, env=HOST)
    assert check_against_history(first, load_history(path), policy).verdict == V.NO_HISTORY
    append_history(path, [make_entry(first, V.DIFFERENT_DEVICE, recorded_utc="2026-11-23T10:00:00Z")])
    same = recorded(590, 21.5, env=HOST, sha="b" * 64)
    check = check_against_history(same, load_history(path), policy)
    assert check.verdict == V.PASS and "bundle rebuilt" in check.message
    # A pass against the last run never turns "different device: no verdict" into a pass.
    ev = evaluate(same, load_baselines(), policy, load_history(path))
    assert [c.verdict for c in ev.checks] == [V.DIFFERENT_DEVICE, V.PASS] and ev.verdict == V.DIFFERENT_DEVICE
    slower = recorded(600, 17, env=HOST)
    check = check_against_history(slower, load_history(path), policy)
    assert check.verdict == V.FAIL and check.reference == "2026-11-23T10:00:00Z"
    # A failed run never becomes the reference: the next run is still compared with the first one.
    append_history(path, [make_entry(slower, V.FAIL, recorded_utc="2026-11-23T11:00:00Z")])
    assert check_against_history(same, load_history(path), policy).reference == "2026-11-23T10:00:00Z"
    # Nor does an unstable one; and other environments or protocols have their own history.
    noisy = recorded([600, 300, 900, 600, 600], [22, 22, 22, 22, 22], env=HOST)
    append_history(path, [make_entry(noisy, V.UNSTABLE, stable=False, recorded_utc="2026-11-23T12:00:00Z")])
    assert check_against_history(same, load_history(path), policy).reference == "2026-11-23T10:00:00Z"
    other = recorded(600, 17, env=HOST, decode_tokens=128)
    assert check_against_history(other, load_history(path), policy).verdict == V.NO_HISTORY
    # A torn last line (a killed run) is skipped.
    with open(path, "a") as handle:
        handle.write('{"recorded_utc": "2026-11')
    assert len(load_history(path)) == 3


def test_history_fails_even_with_no_published_figure(tmp_path: Path, baselines, policy):
    tiny = dict(env=HOST, model="gemma3-270m", ekv=1024, file="Gemma3-270M_q8_ekv1024.task")
    history = [make_entry(recorded(1500, 63, **tiny), V.NO_BASELINE)]
    ev = evaluate(recorded(1500, 40, **tiny), baselines, policy, history)
    assert [c.verdict for c in ev.checks] == [V.NO_BASELINE, V.FAIL] and ev.verdict == V.FAIL


def _write(path: Path, results: list[BenchmarkResult]) -> Path:
    path.write_text(json.dumps([r.to_dict() for r in results]))
    return path


def test_cli_judge_exit_codes(tmp_path: Path, capsys):
    slow = _write(tmp_path / "s24-slow.json", [recorded(177, 25)])
    assert lab_main(["judge", str(slow), "--report-dir", str(tmp_path / "r1")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL]" in out and "Samsung S24 Ultra" in out
    other = _write(tmp_path / "host.json", [recorded(20, 2, env=HOST)])
    assert lab_main(["judge", str(other), "--report-dir", str(tmp_path / "r2")]) == 0
    assert "different device: no verdict" in capsys.readouterr().out
    # A looser tolerance from the command line turns the S24 fail into a pass.
    assert (
        lab_main(["judge", str(slow), "--report-dir", str(tmp_path / "r3"), "--tolerance", "decode_tokens_per_s=0.3"])
        == 0
    )
    error = recorded(0, 0)
    error.samples, error.status, error.message = [], "error", "adb: device offline"
    assert lab_main(["judge", str(_write(tmp_path / "e.json", [error])), "--report-dir", str(tmp_path / "r4")]) == 2
    assert lab_main(["judge", str(tmp_path / "missing.json"), "--report-dir", str(tmp_path / "r5")]) == 2
    assert "error: cannot read results file" in capsys.readouterr().err


def test_bad_baselines_file_is_a_clear_error(tmp_path: Path):
    from device_tests.errors import LabError

    text = (Path(load_baselines().path).read_text()).replace('backend = "cpu"', 'backend = "cpu-ish"', 1)
    bad = tmp_path / "baselines.toml"
    bad.write_text(text)
    with pytest.raises(LabError, match="backend must be one of"):
        load_baselines(bad)
