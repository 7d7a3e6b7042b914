"""LiteRT-LM engines on a chosen backend and precision, as `verify` and the device lab open them.

Three things every caller needs and LiteRT-LM leaves to its caller:
- the GPU activation precision, F16 or F32 (`ActivationDataType`; LiteRT-LM's GPU default is F16);
- a cache folder of its own per bundle, backend and precision. LiteRT-LM otherwise writes its XNNPACK weight
  cache and its GPU program and weight caches beside the bundle (a bundle folder is what users copy to a CDN), and
  the GPU program cache's name does not say which precision compiled it, so an F32 run could reuse F16 programs;
- the adapter the GPU engine picked, which it only logs ("Selected adapter: ..."): the engine's stderr is
  captured while it starts, so a report can name the device and a failure can quote the engine's own reason.

Only the standard library and `litert_lm` are imported here, so the same code runs on a machine that has LiteRT-LM
and nothing else of gemma-edge's dependencies (a lent GPU host).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BACKENDS = ("cpu", "gpu")
PRECISIONS = ("f16", "f32")
_ADAPTER_LINE = re.compile(r"Selected adapter: (.+)")
_ERROR_LINE = re.compile(r"^(E\d{4} |ERROR: |.*(?:Failed|failed|can not|cannot|Error)).*$", re.MULTILINE)


class EngineError(RuntimeError):
    """LiteRT-LM refused to open or run a bundle; the message carries the engine's own reason."""


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Where and how a bundle runs: `cpu` with `threads`, or `gpu` with activations in `precision` (f16 / f32)."""

    backend: str = "cpu"
    precision: str | None = None
    threads: int = 2

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.backend == "cpu" and self.precision is not None:
            raise ValueError("a precision is a GPU setting (the CPU backend runs float32 activations)")
        if self.backend == "gpu" and self.precision not in PRECISIONS:
            raise ValueError(f"the GPU backend needs a precision: one of {', '.join(PRECISIONS)}")

    @property
    def label(self) -> str:
        return "CPU" if self.backend == "cpu" else f"GPU {self.precision.upper()}"  # type: ignore[union-attr]

    @property
    def key(self) -> str:
        return self.backend if self.backend == "cpu" else f"gpu-{self.precision}"


@dataclasses.dataclass
class OpenedEngine:
    engine: Any
    config: EngineConfig
    adapter: str | None
    """The engine's "Selected adapter" line (GPU), e.g. "llvmpipe (LLVM 15.0.6, 256 bits), arch=software, ..."."""
    log: str

    def create_session(self, **kwargs: Any) -> Any:
        return self.engine.create_session(**kwargs)

    def close(self) -> None:
        self.engine.close()


def engine_cache_dir(bundle: Path, config: EngineConfig, root: Path) -> Path:
    """The cache folder (created) for this bundle's bytes (name, size, mtime) on this backend and precision:
    LiteRT-LM's compiled programs and weight caches go here, never beside the bundle."""
    stat = Path(bundle).stat()
    folder = Path(root) / "litert-lm" / f"{Path(bundle).name}-{stat.st_size}-{stat.st_mtime_ns}" / config.key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def engine_model_path(bundle: Path, config: EngineConfig, root: Path) -> Path:
    """A link to `bundle` inside its cache folder, for runners that cannot pass LiteRT-LM a cache folder
    (`litert-lm benchmark` writes its XNNPACK cache beside the path it is given): the cache lands there, not in the
    folder users copy to a CDN."""
    folder = engine_cache_dir(bundle, config, root)
    link = folder / Path(bundle).name
    target = Path(bundle).resolve()
    if not (link.is_symlink() and link.resolve() == target):
        temporary = folder / f".{link.name}.link"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        temporary.replace(link)
    return link


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Send file descriptor 2 (where LiteRT-LM's C++ logs go) to a temporary file; yield a list that holds its text
    once the block ends. Only what the engine says while starting is captured; later logs go to stderr as usual."""
    sink: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sink.append(capture.read().decode(errors="replace"))


def engine_reason(log: str, limit: int = 3) -> str:
    """The engine's own error lines from a log, most specific first, for a one-line message."""
    lines = [line.strip() for line in _ERROR_LINE.findall(log) if line.strip()]
    specific = [line for line in lines if "Buffer with size" in line or "adapter" in line.lower()]
    chosen = (specific or lines)[:limit]
    return " | ".join(re.sub(r"^[EW]\d{4} [\d:. ]+\S+\] ", "", line) for line in chosen)


def open_engine(bundle: Path, max_num_tokens: int, config: EngineConfig, cache_root: Path, **engine_options: Any) -> OpenedEngine:
    """A LiteRT-LM engine for `bundle` on `config`; EngineError (with the engine's reason) when it will not open."""
    import litert_lm
    from litert_lm import Backend, Engine

    if config.backend == "gpu":
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # the Vulkan loader's layers want one
        backend = Backend.GPU()
        precision = (litert_lm.ActivationDataType.FLOAT16 if config.precision == "f16"
                     else litert_lm.ActivationDataType.FLOAT32)
    else:
        backend, precision = Backend.CPU(thread_count=config.threads), None
    cache = engine_cache_dir(bundle, config, cache_root)
    engine = None
    with captured_stderr() as log:
        try:
            engine = Engine(str(bundle), backend=backend, max_num_tokens=max_num_tokens, cache_dir=str(cache),
                            activation_data_type=precision, **engine_options)
        except Exception as exc:  # LiteRT-LM raises RuntimeError with a generic message; the log has the reason
            failure: Exception | None = exc
        else:
            failure = None
    text = log[0] if log else ""
    if failure is not None or engine is None:
        reason = engine_reason(text) or str(failure)
        raise EngineError(f"LiteRT-LM could not open {Path(bundle).name} on {config.label}: {reason}")
    adapter = _ADAPTER_LINE.search(text)
    return OpenedEngine(engine, config, adapter.group(1).strip() if adapter else None, text)


def greedy_texts(engine: OpenedEngine | Any, prompts: list[str], max_tokens: int) -> list[tuple[str, str]]:
    """(text, error) per prompt with top-1 sampling, at most `max_tokens` new tokens, one session per prompt."""
    from litert_lm import SamplerConfig

    results = []
    for prompt in prompts:
        session = engine.create_session(
            apply_prompt_template=False, sampler_config=SamplerConfig(top_k=1), max_output_tokens=max_tokens
        )
        try:
            session.run_prefill([prompt])
            texts = session.run_decode().texts
            results.append((texts[0] if texts else "", ""))
        except Exception as exc:  # the engine reports NaN/-1 ids and similar as RuntimeError
            results.append(("", f"{type(exc).__name__}: {exc}"))
        finally:
            session.close()
    return results


def greedy_failed(greedy: list[tuple[str, str]], expect_text: list[bool]) -> bool:
    """An engine error, or nothing where the reference generates text: verification fails on the greedy pass
    alone, so the (long) teacher-forced pass is not run."""
    return any(error or (expected and not text) for (text, error), expected in zip(greedy, expect_text))


def scored_texts(engine: OpenedEngine | Any, pieces: list[tuple[str, str]]) -> list[tuple[list[float], str]]:
    """(log-likelihood per target token, error) for each (context, target): the context prefilled, the target
    scored by LiteRT-LM (`run_text_scoring`), one session each (`sdk_build.verify.perplexity`)."""
    results = []
    for context, target in pieces:
        session = engine.create_session(apply_prompt_template=False)
        try:
            session.run_prefill([context])
            responses = session.run_text_scoring([target])
            results.append((list(responses.token_scores[0]) if responses.token_scores else [], ""))
        except Exception as exc:  # the engine reports its failures as RuntimeError
            results.append(([], f"{type(exc).__name__}: {exc}"))
        finally:
            session.close()
    return results


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Open the engine a request names and run its prompts: greedy continuations, then one token per context.

    request: bundle, max_num_tokens, backend, precision, threads, cache_root, prompts, new_tokens, contexts, and
    optionally `scoring`: [context, target] pairs. The answer holds `greedy` and `forced` as [text, error] pairs,
    `scores` as [log-likelihoods, error] pairs, the engine's adapter line, and `error` (one line) when the engine
    would not open.
    """
    config = EngineConfig(request["backend"], request.get("precision"), int(request.get("threads", 2)))
    device = None
    if config.backend == "gpu":
        from sdk_build.gpu.vulkan import VulkanUnavailable, engine_device, list_devices

        try:
            device = engine_device(list_devices()).to_dict()
        except VulkanUnavailable:
            device = None
    try:
        engine = open_engine(Path(request["bundle"]), int(request["max_num_tokens"]), config, Path(request["cache_root"]))
    except EngineError as exc:
        return {"error": str(exc), "greedy": [], "forced": [], "scores": [], "adapter": None, "device": device}
    try:
        greedy = greedy_texts(engine, list(request["prompts"]), int(request["new_tokens"]))
        broken = greedy_failed(greedy, list(request.get("expect_text") or [False] * len(greedy)))
        forced = greedy_texts(engine, list(request["contexts"]), 1) if not broken else []
        scoring = [tuple(pair) for pair in request.get("scoring", [])]
        scores = scored_texts(engine, scoring) if scoring and not broken else []  # type: ignore[arg-type]
    finally:
        engine.close()
    return {"error": "", "greedy": greedy, "forced": forced, "scores": scores, "adapter": engine.adapter,
            "device": device}


def main(argv: list[str] | None = None) -> int:
    """`python -m sdk_build.verify.engine REQUEST.json RESULT.json`: run a request in a process of its own.

    A GPU engine cannot share a process with TensorFlow (which the fp32 reference imports through litert-torch):
    LiteRT-LM's GPU backend crashes with a segmentation fault when both are loaded, so `verify` runs it here.
    """
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m sdk_build.verify.engine REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    result = run_request(json.loads(Path(args[0]).read_text()))
    Path(args[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
