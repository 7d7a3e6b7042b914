"""Time to first demo: from a fresh checkout to the first answer token in the browser, as a new user gets it.

    python -m bench.first_demo                      # git clone of HEAD (committed work only)
    python -m bench.first_demo --source .           # a copy of the working tree (tracked + untracked, not ignored)

Phases, each timed on its own, all in one run:
  checkout     git clone of the repository (or a copy of `--source`) into a temp folder
  setup        `bash scripts/setup.sh` there: a fresh .venv, pinned packages, the web demo's npm packages
  build        `.venv/bin/nox -s demo` until it starts the server: the embedded Gemma 3 270M bundles, built and
               verified from an empty model cache (GEMMA_EDGE_CACHE points at a new, empty folder)
  server up    until /api/health answers and lists the bundles
  page loaded  a headless Chromium (Playwright) opens the page: WebGPU detected, bundle list shown
  model loaded the user types a prompt and presses Send: the page downloads the bundle and starts the engine
  first token  until the first answer text appears in the page
The goal is a total of 10 minutes or less. pip's and npm's caches are not cleared (a new user's would be cold):
their sizes before the run, and the package index pip used, are recorded with the results, as is the machine's
load average around each phase (other work on the machine slows every phase).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError

from bench.children import ChildFailed, free_port, log_tail, streamed_child, wait_until
from bench.common import DEFAULT_RESULTS_DIR, print_table, write_results
from bench.demo_page import FirstAnswer, time_first_answer
from bench.disk_guard import GIB, DiskGuard, NotEnoughDisk, require_free
from web_demo.automation import PageError

GOAL_S = 600.0
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPT = "The capital of France is"
NEEDED_DISK = 10 * GIB  # fresh .venv ~4.5 GiB, model cache ~2.2 GiB, bundles and XNNPACK caches ~1.5 GiB, slack
DISK_FLOOR = int(1.5 * GIB)
STEP_PREFIXES = ("done ", "built ", "verify:", "... ")


class PhaseFailed(RuntimeError):
    """A phase failed; the message names it and carries the log tail."""


@dataclasses.dataclass
class Phase:
    name: str
    seconds: float
    load_before: float
    load_after: float


@dataclasses.dataclass
class Clock:
    """Back-to-back phases: each lap ends the current phase (now, or at a given instant) and starts the next."""

    current: str = ""  # the phase under way, for the record when a run stops in the middle of it
    phases: list[Phase] = dataclasses.field(default_factory=list)
    mark: float = dataclasses.field(default_factory=time.monotonic)
    load: float = dataclasses.field(default_factory=lambda: os.getloadavg()[0])

    def lap(self, name: str, end: float | None = None) -> Phase:
        end = time.monotonic() if end is None else end
        load = os.getloadavg()[0]
        phase = Phase(name, end - self.mark, self.load, load)
        self.phases.append(phase)
        self.mark, self.load = end, load
        print(f"== {name}: {phase.seconds:,.1f} s (load average {phase.load_before:.1f} -> {load:.1f})", flush=True)
        return phase


def progress(phase: str) -> Callable[[str], None]:
    started = time.monotonic()

    def show(line: str) -> None:
        if line.strip():
            elapsed = time.monotonic() - started
            print(f"  [{phase} {int(elapsed // 60)}:{int(elapsed % 60):02d}] {line[:200]}", flush=True)

    return show


def run_phase(
    name: str, command: list[str], *, cwd: Path, env: dict[str, str], log: Path, guard: DiskGuard | None = None
) -> None:
    """Run one setup step to completion with live output; raise PhaseFailed with its log tail on failure."""
    with streamed_child(command, log, progress(name), env=env, cwd=cwd) as process:
        if guard:
            guard.watch(process)
        code = process.wait()
    if code != 0:
        raise PhaseFailed(f"{name}: `{' '.join(command)}` exited {code}:\n{log_tail(log)}")


def checkout(source: Path | None, destination: Path, log: Path) -> str:
    """Clone the repository's HEAD, or copy `source`'s working tree; return what was taken."""
    if source is None:
        run_phase(
            "checkout",
            ["git", "clone", "--quiet", str(REPO_ROOT), str(destination)],
            cwd=REPO_ROOT,
            env=dict(os.environ),
            log=log,
        )
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=destination, capture_output=True, text=True, check=True
        ).stdout.strip()
        return f"git clone of {REPO_ROOT} at {commit} (uncommitted changes are not in it)"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout
    copied = 0
    for name in filter(None, listed.decode().split("\0")):
        src = source / name
        if src.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, destination / name)
            copied += 1
    return f"copy of the working tree of {source.resolve()} ({copied} files, uncommitted changes included)"


def fresh_env(cache: Path, port: int) -> dict[str, str]:
    """The user's environment, minus anything pointing at this checkout's own virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(GEMMA_EDGE_CACHE=str(cache), GEMMA_EDGE_HOST="127.0.0.1", GEMMA_EDGE_PORT=str(port))
    return env


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def cache_state() -> dict[str, Any]:
    """How warm the package caches were. pip does not cache what it installs from a file:// index, so a pip cache
    that stays the same size across the run, with such an index configured, means nothing came over the network."""
    pip = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    pip_cache = Path(os.environ.get("PIP_CACHE_DIR", Path.home() / ".cache" / "pip"))
    return {
        "pip_cache_dir": str(pip_cache),
        "pip_cache_bytes": folder_bytes(pip_cache) if pip_cache.is_dir() else 0,
        "pip_config": [line for line in pip.stdout.splitlines() if "index" in line or "find-links" in line],
        "pip_find_links_env": os.environ.get("PIP_FIND_LINKS"),
        "npm_cache_bytes": folder_bytes(Path.home() / ".npm") if (Path.home() / ".npm").is_dir() else 0,
    }


def health(base: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{base}/api/health", timeout=5) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except (OSError, ValueError):
        return None


def serve_and_ask(
    repo: Path,
    env: dict[str, str],
    port: int,
    log: Path,
    clock: Clock,
    args: argparse.Namespace,
    guard: DiskGuard,
    steps: list[dict[str, Any]],
) -> FirstAnswer:
    """Start `nox -s demo`, time its build and the server coming up, then the first answer in the browser.

    The build's own step lines (sdk-build's "done ... (N s)", "built ...", "verify: ...") are appended to `steps`
    with their time since the build started, so the results say which step of the build took the time.
    """
    base = f"http://127.0.0.1:{port}"
    server_started: list[float] = []
    build_started = time.monotonic()
    show = progress("nox -s demo")

    def on_line(line: str) -> None:
        if not server_started and line.startswith("nox >") and " -m web_demo" in line:
            server_started.append(time.monotonic())  # the build is over: nox now starts the server
        if line.lstrip().startswith(STEP_PREFIXES):
            steps.append({"at_s": round(time.monotonic() - build_started, 1), "line": line.strip()[:300]})
        show(line)

    with streamed_child([str(repo / ".venv/bin/nox"), "-s", "demo"], log, on_line, env=env, cwd=repo) as process:
        guard.watch(process)
        wait_until(lambda: bool(server_started), process, log, what="nox -s demo (build)", timeout_s=args.build_timeout)
        clock.lap("build", end=server_started[0])
        clock.current = "server up"
        wait_until(
            lambda: bool((health(base) or {}).get("bundles")), process, log, what="the demo server", timeout_s=120
        )
        clock.lap("server up")
        clock.current = "browser (page, model, first token)"
        print(f"  health: {health(base)}", flush=True)
        answer = time_first_answer(base, args.prompt, max_tokens=args.max_tokens, timeout_s=args.answer_timeout)
        clock.lap("page loaded", end=answer.page_loaded_at)
        clock.lap("model loaded", end=answer.model_loaded_at)
        clock.lap("first token", end=answer.first_token_at)
        return answer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.first_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, default=None, help="copy this working tree instead of cloning the repository's HEAD"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where the temp checkout goes (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the checkout, venv, cache and logs afterwards")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"what the user types (default {DEFAULT_PROMPT!r})")
    parser.add_argument(
        "--max-tokens", type=int, default=None, help="maxTokens (default: the page's, the bundle's ekv)"
    )
    parser.add_argument("--build-timeout", type=float, default=3600.0, help="seconds allowed for the build")
    parser.add_argument("--answer-timeout", type=float, default=1200.0, help="seconds allowed for model load / token")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.source is not None and not (args.source / ".git").exists():
        parser.error(f"--source {args.source} is not a git working tree (its file list comes from git ls-files)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    caches = cache_state()
    print(
        f"pip cache {caches['pip_cache_bytes'] / 2**20:,.0f} MiB, npm cache {caches['npm_cache_bytes'] / 2**20:,.0f} "
        f"MiB; pip index settings: {caches['pip_config'] or 'default (PyPI)'}",
        flush=True,
    )
    try:
        free = require_free(args.work_dir or Path(tempfile.gettempdir()), NEEDED_DISK)
    except NotEnoughDisk as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{free / GIB:.1f} GiB free; the run stops itself below {DISK_FLOOR / GIB:.1f} GiB", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gemma-edge-first-demo-", dir=args.work_dir))
    repo, cache, logs = work / "gemma-edge", work / "model-cache", work / "logs"
    for folder in (repo, cache, logs):
        folder.mkdir(parents=True)
    port = free_port()
    env = fresh_env(cache, port)
    clock = Clock()
    answer: FirstAnswer | None = None
    failure = None
    source = ""
    steps: list[dict[str, Any]] = []
    with DiskGuard(work, DISK_FLOOR) as guard:
        try:
            clock.current = "checkout"
            source = checkout(args.source, repo, logs / "checkout.log")
            clock.lap("checkout")
            clock.current = "setup"
            run_phase("setup", ["bash", "scripts/setup.sh"], cwd=repo, env=env, log=logs / "setup.log", guard=guard)
            clock.lap("setup")
            clock.current = "build"
            answer = serve_and_ask(repo, env, port, logs / "nox-demo.log", clock, args, guard, steps)
        except (PhaseFailed, ChildFailed, PageError, PlaywrightError, OSError) as exc:  # recorded, then cleaned up
            failure = f"{type(exc).__name__}: {exc}" if guard.reason is None else f"{guard.reason}\n{exc}"
            print(f"error: {failure}", file=sys.stderr)
            clock.lap(f"{clock.current} (stopped)")
    total = sum(p.seconds for p in clock.phases)
    rows: list[list[Any]] = [
        [p.name, p.seconds, p.seconds / 60, f"{p.load_before:.1f} -> {p.load_after:.1f}"] for p in clock.phases
    ]
    rows.append(["total", total, total / 60, ""])
    print_table(
        f"Time to first demo (goal <= {GOAL_S / 60:.0f} min)", ["phase", "seconds", "minutes", "load avg"], rows
    )
    if answer:
        print(
            f"bundle {answer.bundle}, precision {answer.precision}, adapter {answer.adapter.get('architecture')}; "
            f"first text: {answer.first_text!r}",
            flush=True,
        )
    slowest = max(clock.phases, key=lambda p: p.seconds).name if clock.phases else None
    path = write_results(
        "first_demo",
        {
            "command": " ".join(["python -m bench.first_demo", *(argv if argv is not None else sys.argv[1:])]),
            "source": source,
            "ok": failure is None,
            "failure": failure,
            "phases": [dataclasses.asdict(p) for p in clock.phases],
            "total_seconds": round(total, 1),
            "goal_seconds": GOAL_S,
            "goal_met": failure is None and total <= GOAL_S,
            "slowest_phase": slowest,
            "build_steps": steps,
            "disk_free_lowest_gib": round(guard.lowest_free / GIB, 1) if guard.lowest_free is not None else None,
            "caches_before": caches,
            "pip_cache_bytes_after": cache_state()["pip_cache_bytes"],  # grows only with network downloads
            "prompt": args.prompt,
            "answer": dataclasses.asdict(answer) if answer else None,
            "work_dir": str(work) if args.keep else None,
        },
        args.results_dir,
    )
    print(f"results: {path}" + (f"; kept {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if failure is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
