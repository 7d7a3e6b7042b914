"""Reports: the JSON has one record per run, the HTML is one self-contained file with the plots and verdicts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from device_tests import verdicts as V
from device_tests.record import BenchmarkResult, Environment, RunSample
from device_tests.session import LabRequest, judge_results

HOST = Environment(
    surface="host",
    device="AMD EPYC",
    os="Debian 12",
    backend="cpu",
    threads=2,
    thermal="not readable",
    extra={"cpu_model": "AMD EPYC", "cores": 2},
)
S24 = Environment(surface="android", device="SM-S928B", os="Android 14", backend="cpu", threads=4)


def result(env: Environment, prefill: list[float], decode: list[float], **kw) -> BenchmarkResult:
    base = dict(
        bundle_file="Gemma3-1B_multi-prefill-seq_q8_ekv1280.task",
        bundle_sha256="c" * 64,
        quantization="dynamic_int8",
        ekv=1280,
        prefill_tokens=1024,
        decode_tokens=256,
        precision="",
        environment=dataclasses.replace(env),
        samples=[RunSample(p, d, ttft_s=1.9, init_s=0.4) for p, d in zip(prefill, decode, strict=True)],
        peak_memory_bytes=1400 * 2**20,
        model="gemma3-1b",
        bundle_format="task",
        prefill_signatures=[32, 128, 512, 1280],
        warmup_runs=1,
        bundle_bytes=1_054_301_942,
    )
    base.update(kw)
    return BenchmarkResult(**base)


def test_reports_json_html_and_history(tmp_path: Path):
    unsupported = result(
        HOST,
        [],
        [],
        precision="F16",
        status="unsupported",
        message="unsupported on this adapter",
        environment=dataclasses.replace(HOST, surface="web", backend="gpu"),
    )
    results = [
        result(HOST, [620, 628, 640], [21.5, 21.9, 22.3]),
        result(S24, [150, 152, 149], [30, 31, 30]),  # slower than the S24's published 177 prefill: fail
        unsupported,
    ]
    request = LabRequest(surface="host", bundles_dir=tmp_path, report_dir=tmp_path / "reports", runs=3, warmup=1)
    outcome = judge_results(results, request)
    assert [ev.verdict for ev in outcome.evaluations] == [V.DIFFERENT_DEVICE, V.FAIL, V.UNSUPPORTED]
    assert outcome.exit_code == 1

    document = json.loads(outcome.json_path.read_text())
    assert document["schema"] == "gemma-edge.device-lab/1" and len(document["records"]) == 3
    first = document["records"][0]
    assert BenchmarkResult.from_dict(first["result"]).samples[1].decode_tokens_per_s == 21.9
    assert first["summary"]["decode_tokens_per_s"]["median"] == 21.9 and first["verdict"] == V.DIFFERENT_DEVICE

    page = outcome.html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # Self-contained: no scripts, stylesheets, images or fonts from anywhere else.
    assert "<script" not in page and "<link" not in page and not re.search(r'src=["\']', page)
    assert page.count("<svg") >= 4  # prefill + decode for each measured bundle
    assert "Bundle size" in page and "1,005" in page  # the 1B q8 .task is the published 1,005 MiB
    for text in (
        "different device: no verdict",
        "fail",
        "unsupported on this adapter",
        "Samsung S24 Ultra",
        "177",
        "AMD EPYC",
        "https://huggingface.co/litert-community/Gemma3-1B-IT",
        "LiteRT-LM README",
    ):
        assert text in page, text
    assert (tmp_path / "reports" / "lab-host-latest.html").read_text() == page

    # A second run on the same environment gets history plots and a history verdict.
    again = judge_results([result(HOST, [600, 610, 620], [21.0, 21.2, 21.4])], request)
    assert again.evaluations[0].check("history")[0].verdict == V.PASS
    assert "Decode history" in again.html_path.read_text()
    lines = outcome.history_path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["good"] and not json.loads(lines[1])["good"]
