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


def _child_env(build: LlamaCppBuild) -> dict[str, str]:
    """The bindings' environment, plus this checkout on PYTHONPATH so `-m bench...` resolves from any directory."""
    env = build.python_env()
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], repo]) if env.get("PYTHONPATH") else repo
    return env


def _score(request: dict) -> list[list[int]]:
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
    results = []
    for tokens in request["sequences"]:
        llm.reset()
        llm.eval(tokens)
        results.append([int(i) for i in np.argmax(llm.scores[: len(tokens)], axis=1)])
    llm.close()
    return results


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m bench.llama_cpp_logits REQUEST.json RESPONSE.json")
    request = json.loads(Path(args[0]).read_text())
    Path(args[1]).write_text(json.dumps({"argmax": _score(request)}))


if __name__ == "__main__":
    main()
