"""nox sessions. They run in the project's .venv (made by scripts/setup.sh): no logic here beyond calling the package.

    nox -s demo            build + verify the embedded 270M bundles, then serve the web demo on 127.0.0.1:8000
    nox -s tests           the CI test-suite (not the slow builds/benchmarks)
    nox -s slow_tests      slow tests: the real 270M in the browser, long builds
    nox -s matrix          the Gemma 3 1B target matrix (-- --checkpoint REF to use real weights)
    nox -s lab_host        device lab on this CPU: 270M and 1B (random weights) bundles vs published figures
    nox -s lab_web         device lab in Chromium through the demo page (F32; F16 marked unsupported here)
    nox -s lab_gpu         device lab on this machine's GPU engine (LiteRT-LM, F16 and F32; lavapipe without a GPU)
    nox -s lab_android     device lab on a phone: -- --serial SERIAL [--binary litert_lm_main]
    nox -s web_screenshot  screenshot of the demo page answering with the first bundle in bundles/
    nox -s bench           side-by-side benchmarks: llama.cpp, int4 recipes vs llama.cpp, nginx, LoRA overhead,
                           web export settings, litert-torch's default vs lightweight conversion
    nox -s bench_build_cost  litert-torch's reference route vs `sdk-build matrix` (build time, peak RSS)
    nox -s first_demo      time from a fresh clone to the first answer in the demo page
"""

from __future__ import annotations

import os
import sys

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]

PY = sys.executable  # the .venv's python: sessions run in it (venv backend "none"), whatever PATH says
HOST = os.environ.get("GEMMA_EDGE_HOST", "127.0.0.1")
PORT = os.environ.get("GEMMA_EDGE_PORT", "8000")
ONE_B = "random:gemma3-1b-it"


def sdk_build(session: nox.Session, *args: str) -> None:
    session.run(PY, "-m", "sdk_build", *args)


def lab(session: nox.Session, *args: str) -> None:
    session.run(PY, "-m", "device_tests.lab", *args)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: build the default bundles for embedded:gemma3-270m, verify them, serve the demo."""
    sdk_build(session, "build-defaults", "--output", "bundles", "--verify")
    sdk_build(session, "catalog", "--bundles", "bundles")
    if "--no-serve" in session.posargs:
        return
    session.run(PY, "-m", "web_demo", "--bundles", "bundles", "--host", HOST, "--port", PORT)


@nox.session
def tests(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-m", "not slow", *session.posargs)


@nox.session
def slow_tests(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    sdk_build(session, "matrix", "--checkpoint", ONE_B, "--output", "bundles", *session.posargs)


@nox.session
def lab_host(session: nox.Session) -> None:
    sdk_build(session, "build-defaults", "--output", "bundles")
    for recipe in ("dynamic_int8", "dynamic_int4_block128"):
        sdk_build(session, "build", "--checkpoint", ONE_B, "--recipe", recipe, "--ekv", "1280", "--output", "bundles")
    # 512/128 rather than the published 1024/256: LiteRT-LM pads a 1024-token prompt to the 1280 signature, which
    # then fills an ekv1280 cache (docs/device_lab.md). Unlike-for-like lengths give "no baseline", by design.
    lab(session, "host", "--bundles", "bundles", "--format", "task", "--runs", "3", "--warmup", "1",
        "--prefill", "512", "--decode", "128", "--threads", "2", "--report-dir", "reports/lab/host", *session.posargs)


@nox.session
def lab_web(session: nox.Session) -> None:
    sdk_build(session, "make-tiny", "bundles/tiny/checkpoint")
    sdk_build(session, "build", "--checkpoint", "bundles/tiny/checkpoint", "--allow-custom-shape", "--recipe",
              "dynamic_int8", "--ekv", "256", "--prefill", "32", "--prefill", "128", "--output", "bundles/tiny")
    lab(session, "web", "--bundles", "bundles/tiny", "--prefill", "32", "--decode", "16", "--runs", "3",
        "--warmup", "1", "--report-dir", "reports/lab/web", *session.posargs)


@nox.session
def lab_gpu(session: nox.Session) -> None:
    """The GPU targets' bundles on this machine's GPU engine: the real 270M web-gpu bundle, and with `-- --1b` the
    1B (random weights) web-gpu and android-gpu matrix too. On a machine without a GPU the engine runs on lavapipe
    (software: reported, never judged against published GPU rows)."""
    one_b = "--1b" in session.posargs
    args = [a for a in session.posargs if a != "--1b"]
    sdk_build(session, "build", "--recipe", "dynamic_int8", "--ekv", "1024", "--prefill", "32", "--prefill", "128",
              "--target", "web-gpu", "--output", "bundles/gpu")
    if one_b:
        sdk_build(session, "matrix", "--checkpoint", ONE_B, "--target", "android-gpu", "web-gpu", "--output",
                  "bundles/gpu")
    lab(session, "gpu", "--bundles", "bundles/gpu", "--format", "task", "--runs", "3", "--warmup", "1",
        "--prefill", "512", "--decode", "128", "--report-dir", "reports/lab/gpu", *args)


@nox.session
def lab_android(session: nox.Session) -> None:
    for recipe in ("dynamic_int8", "dynamic_int4_block128"):
        sdk_build(session, "build", "--checkpoint", ONE_B, "--recipe", recipe, "--ekv", "1280", "--output", "bundles")
    lab(session, "android", "--bundles", "bundles", "--select", "model=gemma3-1b", "--format", "task",
        "--android-threads", "4", "--runs", "5", "--warmup", "1", "--prefill", "512", "--decode", "256",
        "--report-dir", "reports/lab/android", *session.posargs)


@nox.session
def web_screenshot(session: nox.Session) -> None:
    session.run(PY, "-m", "web_demo.screenshot", "--bundles", "bundles", "--max-tokens", "32",
                "--output", "docs/web_demo_screenshot.png", *session.posargs)


def bench_script(session: nox.Session, name: str, *args: str) -> None:
    session.run(PY, "-m", f"bench.{name}", *args)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks (bench/; tables printed, JSON in reports/bench/). Long; never part of CI.

    Runs llama.cpp vs our bundles (270M and 1B shape), every int4 recipe vs llama.cpp's Q4_0/Q4_K_M/Q8_0
    (`int4_recipes`: 270M and 1B shape; it builds the recipes it lacks: hours on 2 cores), our server vs nginx
    (needs `apt-get install nginx`), the LoRA overhead (base vs fused vs runtime), the web export settings,
    litert-torch's default vs lightweight conversion (270M) and window-sized vs full local KV caches (270M and 1B,
    ekv 1280/4096, LiteRT-LM peak RSS next to the catalog's estimate). `-- NAME` runs just one of them.
    """
    known = {"vs_llama_cpp", "int4_recipes", "serving", "lora_overhead", "web_export_settings", "export_conversion",
             "kv_window"}
    chosen = set(session.posargs) or known
    if chosen - known:
        session.error(f"unknown benchmark {sorted(chosen - known)}; choose from {sorted(known)}")
    if "vs_llama_cpp" in chosen:
        bench_script(session, "vs_llama_cpp", "--models", "270m,1b", "--runs", "3")
    if "int4_recipes" in chosen:
        bench_script(session, "int4_recipes", "--models", "270m,1b", "--runs", "3")
    if "serving" in chosen:
        bench_script(session, "serving")
    if "lora_overhead" in chosen:
        bench_script(session, "lora_overhead")
    if "web_export_settings" in chosen:
        bench_script(session, "web_export_settings", "--runs", "2")
    if "export_conversion" in chosen:
        bench_script(session, "export_conversion")
    if "kv_window" in chosen:
        bench_script(session, "kv_window")


@nox.session
def bench_build_cost(session: nox.Session) -> None:
    """litert-torch's reference route vs `sdk-build matrix` on every matrix variant (270M: ~1 h on 2 cores).

    `-- --checkpoint random:gemma3-1b-it` times the 1B set instead (the reference route peaks at 21.5 GB: needs a
    machine with 24 GB free and about 1.5 h; `-- ... --skip-reference` times ours alone, about 20 min).
    """
    bench_script(session, "build_cost", *(session.posargs or ["--checkpoint", "embedded:gemma3-270m"]))


@nox.session
def first_demo(session: nox.Session) -> None:
    """Time to first demo: fresh clone + setup + `nox -s demo` + first answer in the page (10-30 min, 10 GiB disk)."""
    bench_script(session, "first_demo", *session.posargs)
