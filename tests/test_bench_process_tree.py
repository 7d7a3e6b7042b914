"""bench.process_tree: a parent holding memory while its child holds more is measured as their sum (RSS and PSS)."""

from __future__ import annotations

import sys

from bench.process_tree import run_measured

MIB = 2**20
CHILD = "import numpy as np, time; b = np.ones(200 * 2**20, dtype=np.uint8); time.sleep(4)  # long enough to be sampled on a busy machine"
PARENT = (
    "import subprocess, sys; import numpy as np; a = np.ones(300 * 2**20, dtype=np.uint8); "
    f"subprocess.run([sys.executable, '-c', {CHILD!r}], check=True)"
)


def test_peak_is_the_sum_over_the_tree_and_pss_does_not_count_shared_pages_twice() -> None:
    run = run_measured([sys.executable, "-c", PARENT]).check()
    assert run.peak_tree_rss_bytes > 480 * MIB  # 300 MiB in the parent + 200 MiB in the child, at the same time
    assert 480 * MIB < run.peak_tree_pss_bytes <= run.peak_tree_rss_bytes
