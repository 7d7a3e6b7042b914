"""bench.int4_recipes' table arithmetic: ratios against Q4_0, the read-bandwidth limit and what the decode goal asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bandwidth import Bandwidth, measure_bandwidth
from bench.int4_recipes import COLUMNS, GOAL_DECODE_X, goal_bytes_per_token, rows_for
from bench.vs_llama_cpp import Subject

MIB = 2**20


def _subject(runtime: str, label: str, mib_per_token: float, decode: list[float]) -> Subject:
    size = int(mib_per_token * MIB)
    return Subject(runtime, label, Path(f"/nonexistent/{label}"), size, size, decode=decode, prefill=[100.0])


def test_goal_bytes_follow_q4_0_and_the_read_bandwidth() -> None:
    bandwidth = Bandwidth(copy_bytes_per_s=30e9, read_bytes_per_s=20e9, threads=2, buffer_bytes=1, repeats=1)
    subjects = [_subject("litert-lm", "ours", 500, [30.0, 36.0, 33.0]),
                _subject("llama.cpp", "Q4_0", 690, [27.0, 28.0, 26.0])]
    goal = goal_bytes_per_token(subjects, bandwidth)
    assert goal == pytest.approx(20e9 / (GOAL_DECODE_X * 27.0))
    rows, records = rows_for(subjects, None, bandwidth)
    ours = dict(zip(COLUMNS, rows[0], strict=True))
    assert ours["MiB read/token"] == pytest.approx(500, rel=1e-6)
    assert ours["decode x Q4_0"] == pytest.approx(33.0 / 27.0)
    assert records[0]["decode_limit_read_bw"] == pytest.approx(20e9 / (500 * MIB))
    assert records[0]["decode_fraction_of_read_limit"] == pytest.approx(33.0 * 500 * MIB / 20e9)
    assert ours["decode/limit (read)"] == f"{33.0 * 500 * MIB / 20e9:.0%}"


def test_no_goal_without_a_measured_q4_0() -> None:
    bandwidth = Bandwidth(30e9, 20e9, 2, 1, 1)
    assert goal_bytes_per_token([_subject("llama.cpp", "Q4_0", 690, [])], bandwidth) is None
    assert goal_bytes_per_token([_subject("llama.cpp", "Q8_0", 1000, [16.0])], bandwidth) is None


def test_bandwidth_is_measured_and_the_better_of_two_kept() -> None:
    measured = measure_bandwidth(threads=2, buffer_bytes=16 * MIB, repeats=2)
    assert measured.read_bytes_per_s > 1e8 and measured.copy_bytes_per_s > 1e8
    slower = Bandwidth(measured.copy_bytes_per_s / 2, measured.read_bytes_per_s * 2, 2, 16 * MIB, 2)
    best = measured.better(slower)
    assert best.copy_bytes_per_s == measured.copy_bytes_per_s
    assert best.read_bytes_per_s == slower.read_bytes_per_s
    assert (best.threads, best.buffer_bytes) == (measured.threads, measured.buffer_bytes)
