"""bench.first_demo's pieces that decide what is timed: the phase clock, the user's environment, the checkout.

The whole script (fresh venv + 270M build + browser) takes 10+ minutes and runs as `python -m bench.first_demo`;
these tests only check that phases add up, that the fresh run cannot see this checkout's virtualenv, and that a
`--source` copy takes the working tree without ignored build outputs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.first_demo import REPO_ROOT, Clock, checkout, fresh_env


def test_phases_are_back_to_back() -> None:
    clock = Clock()
    start = clock.mark
    time.sleep(0.05)
    clock.lap("a")
    clock.lap("b", end=clock.mark + 0.25)
    time.sleep(0.01)
    clock.lap("c")
    assert [p.name for p in clock.phases] == ["a", "b", "c"]
    assert clock.phases[0].seconds >= 0.05
    assert abs(clock.phases[1].seconds - 0.25) < 1e-9
    assert abs(sum(p.seconds for p in clock.phases) - (clock.mark - start)) < 1e-6


def test_fresh_env_hides_this_virtualenv(tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "cache", 8123)
    assert str(Path(sys.prefix) / "bin") not in env["PATH"].split(os.pathsep)
    assert "VIRTUAL_ENV" not in env
    assert env["GEMMA_EDGE_CACHE"] == str(tmp_path / "cache")
    assert env["GEMMA_EDGE_PORT"] == "8123"


def test_source_copy_takes_the_tree_without_ignored_outputs(tmp_path: Path) -> None:
    described = checkout(REPO_ROOT, tmp_path, tmp_path / "checkout.log")
    assert "copy of the working tree" in described
    for needed in ("noxfile.py", "scripts/setup.sh", "pyproject.toml", "bench/first_demo.py"):
        assert (tmp_path / needed).is_file(), needed
    assert not (tmp_path / ".venv").exists()
    assert not (tmp_path / "web_demo" / "node_modules").exists()
