"""Web runner: the demo page's benchmark mode in Chromium, driven by `web_demo.automation`.

The page runs each bundle in the runtime for its format: `.task` in MediaPipe LLM Inference
(@mediapipe/tasks-genai), `.litertlm` in LiteRT-LM's own web runtime (@litert-lm/core); the result records
which one (environment.extra["runtime"]), so the two are compared side by side on the same model.
Each precision runs in a fresh browser. F16 on an adapter without `shader-f16` (SwiftShader here) is
reported as status "unsupported" ("unsupported on this adapter"), never as an error or a slow run: the
page refuses it because F16 arithmetic goes wrong there (FACTS: a real 270M gave token id -1).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from device_tests.errors import LabError
from device_tests.host_env import cpu_model, host_facts, os_description, thermal_state
from device_tests.record import BenchmarkResult, Environment, RunSample, utc_now
from device_tests.runners.host import BundleInfo

UNSUPPORTED_F16 = "unsupported on this adapter"


@dataclasses.dataclass(frozen=True)
class WebRunOptions:
    prefill_tokens: int = 64
    decode_tokens: int = 32
    runs: int = 3
    warmup: int = 1
    precisions: tuple[str, ...] = ("F16", "F32")
    chromium_path: str | None = None
    timeout_s: float = 900.0


def load_automation() -> Any:
    """`web_demo.automation`, imported only when a web run is asked for."""
    try:
        from web_demo import automation
    except ImportError as exc:
        raise LabError(f"the web runner needs web_demo.automation and Playwright ({exc})") from exc
    return automation


def browser_name(user_agent: str) -> str:
    match = re.search(r"(HeadlessChrome|Chrome|Chromium|Firefox|Version)/([\d.]+)", user_agent or "")
    return f"{match.group(1)} {match.group(2)}" if match else (user_agent or "")


def page_to_result(page: dict[str, Any], bundle: BundleInfo, precision: str, options: WebRunOptions) -> BenchmarkResult:
    """Map the page's `gemma-edge.web-bench/1` JSON onto the lab's record."""
    adapter = dict(page.get("adapter") or {})
    adapter.pop("limits", None)  # dozens of numbers nobody compares; the page's own JSON keeps them
    extra = host_facts()
    extra.update(
        {
            "page_schema": page.get("schema"),
            "precision_note": page.get("precision_note"),
            "load_ms": page.get("load_ms"),
            "max_tokens": page.get("max_tokens"),
            "user_agent": page.get("user_agent"),
            "actual_tokens": [(r.get("prefill_tokens"), r.get("decode_tokens")) for r in page.get("runs") or []],
            "runtime": page.get("runtime"),
            # what each measured run generated greedily, to compare with another runtime or the CPU
            "texts": [r.get("text") for r in page.get("runs") or []],
        }
    )
    env = Environment(
        surface="web",
        device=cpu_model(),
        os=os_description(),
        backend="gpu",
        browser=browser_name(page.get("user_agent", "")),
        adapter=adapter,
        thermal=thermal_state(),
        extra=extra,
    )
    result = bundle.new_result(
        prefill_tokens=options.prefill_tokens, decode_tokens=options.decode_tokens, warmup=options.warmup,
        precision=precision, environment=env, started_utc=page.get("started_utc") or utc_now(),
    )
    if not page.get("ok"):
        error = str(page.get("error") or "the page reported no result")
        no_f16 = precision == "F16" and (adapter.get("shaderF16") is False or "shader-f16" in error)
        result.status = "unsupported" if no_f16 else "error"
        result.message = f"{UNSUPPORTED_F16} ({error})" if no_f16 else error
        return result
    load_s = (page.get("load_ms") or 0) / 1000 or None
    for run in page.get("runs") or []:
        if run.get("prefill_tok_s") is None or run.get("decode_tok_s") is None:
            continue
        result.samples.append(
            RunSample(
                prefill_tokens_per_s=float(run["prefill_tok_s"]),
                decode_tokens_per_s=float(run["decode_tok_s"]),
                ttft_s=run["ttft_ms"] / 1000 if run.get("ttft_ms") is not None else None,
                init_s=load_s,
            )
        )
    if not result.samples:
        result.status, result.message = "error", "the page measured no run with both prefill and decode speeds"
    return result


def run_web_benchmark(base_url: str, bundle: BundleInfo, options: WebRunOptions) -> list[BenchmarkResult]:
    """One result per precision; F16 first, as published."""
    automation = load_automation()
    results = []
    for precision in options.precisions:
        try:
            page = automation.run_page_benchmark(
                base_url,
                bundle.path.name,
                precision.lower(),
                options.prefill_tokens,
                options.decode_tokens,
                options.runs,
                options.warmup,
                chromium_path=options.chromium_path,
                timeout_s=options.timeout_s,
            )
        except Exception as exc:  # a crashed browser or a timeout is this run's error, not the lab's
            page = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "started_utc": utc_now()}
        results.append(page_to_result(page, bundle, precision, options))
    return results


__all__ = ["WebRunOptions", "run_web_benchmark", "page_to_result", "UNSUPPORTED_F16"]
