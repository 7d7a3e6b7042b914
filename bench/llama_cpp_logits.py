"""llama.cpp's next-token argmax at every position of given token sequences, through llama-cpp-python's bindings.

Runs in a child process (`python -m bench.llama_cpp_logits REQUEST RESPONSE`), because the bindings find libllama
through LLAMA_CPP_LIB_PATH at import time, and so that llama.cpp's threads and memory leave with the process instead
of sharing ours with PyTorch and LiteRT. Token ids go in as ids: llama.cpp's own tokenizer is not involved, so a
disagreement can only come from the weights and the arithmetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.llama_cpp_build import LlamaCppBuild, LlamaCppError


def llama_cpp_argmax(
    build: LlamaCppBuild, model: Path, sequences: Sequence[Sequence[int]], threads: int = 2, timeout_s: float = 3600
) -> list[list[int]]:
    """For each sequence, the argmax of llama.cpp's logits after each of its tokens (same length as the sequence)."""
    if not sequences:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        request, response = Path(tmp) / "request.json", Path(tmp) / "response.json"
        longest = max(len(s) for s in sequences)
        request.write_text(
            json.dumps(
                {
                    "model": str(model),
                    "threads": threads,
                    "n_ctx": longest,
                    "sequences": [list(s) for s in sequences],
                }
            )
        )
        done = subprocess.run(
            [sys.executable, "-m", "bench.llama_cpp_logits", str(request), str(response)],
            check=False,
            env=_child_env(build),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0 or not response.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise LlamaCppError(f"llama.cpp could not score {model.name}:\n{tail}")
        return json.loads(response.read_text())["argmax"]


def llama_cpp_log_likelihoods(
    build: LlamaCppBuild, model: Path, segments: Sequence[tuple[Sequence[int], int]], threads: int = 1,
    timeout_s: float = 3600,
) -> list[list[float]]:
    """For each (ids, start): llama.cpp's log-probability of ids[start:], each given the ids before it (perplexity)."""
    if not segments:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        request, response = Path(tmp) / "request.json", Path(tmp) / "response.json"
        longest = max(len(ids) for ids, _ in segments)
        request.write_text(json.dumps({"model": str(model), "threads": threads, "n_ctx": longest,
                                       "sequences": [list(ids) for ids, _ in segments],
                                       "starts": [int(start) for _, start in segments]}))
        done = subprocess.run([sys.executable, "-m", "bench.llama_cpp_logits", str(request), str(response)],
                              check=False, env=_child_env(build), capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not response.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            raise LlamaCppError(f"llama.cpp could not score {model.name}:\n{tail}")
        return json.loads(response.read_text())["log_likelihoods"]


def _child_env(build: LlamaCppBuild) -> dict[str, str]:
    """The bindings' environment, plus this checkout on PYTHONPATH so `-m bench...` resolves from any directory."""
    env = build.python_env()
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], repo]) if env.get("PYTHONPATH") else repo
    return env


def _score(request: dict) -> dict[str, list]:
    """argmax after every token, or (with `starts`) the log-probability of every token from its start on."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=request["model"],
        n_ctx=request["n_ctx"],
        n_batch=request["n_ctx"],
        n_ubatch=request["n_ctx"],
        n_threads=request["threads"],
        n_threads_batch=request["threads"],
        logits_all=True,
        verbose=False,
    )
    starts = request.get("starts")
    results = []
    for index, tokens in enumerate(request["sequences"]):
        llm.reset()
        llm.eval(tokens)
        logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
        if starts is None:
            results.append([int(i) for i in np.argmax(logits, axis=1)])
            continue
        rows = np.arange(starts[index] - 1, len(tokens) - 1)
        picked = logits[rows, np.asarray(tokens[starts[index]:])]
        peak = logits[rows].max(axis=1)
        log_norm = peak + np.log(np.exp(logits[rows] - peak[:, None]).sum(axis=1))
        results.append((picked - log_norm).tolist())
    llm.close()
    return {"log_likelihoods" if starts is not None else "argmax": results}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m bench.llama_cpp_logits REQUEST.json RESPONSE.json")
    request = json.loads(Path(args[0]).read_text())
    Path(args[1]).write_text(json.dumps(_score(request)))


if __name__ == "__main__":
    main()
