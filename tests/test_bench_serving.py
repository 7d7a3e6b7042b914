"""bench.serving end to end on a small file: both real servers start, every byte checks, the JSON is written.

No timing assertions: the figures depend on the machine. Skipped where nginx is not installed.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from bench.http_download import slices
from bench.nginx_server import render_config

requires_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx (apt-get install nginx)"
)


@pytest.mark.parametrize(("size", "parts"), [(1, 1), (10, 3), (2**30 + 7, 64), (64, 64)])
def test_slices_cover_the_file_exactly(size: int, parts: int) -> None:
    cut = slices(size, parts)
    assert len(cut) == parts
    assert cut[0][0] == 0 and cut[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cut))
    assert all(stop > start for start, stop in cut)


def test_nginx_config_keeps_everything_in_its_prefix(tmp_path: Path) -> None:
    conf = render_config(tmp_path / "root", tmp_path / "prefix", "127.0.0.1", 8123)
    assert "sendfile on;" in conf and "listen 127.0.0.1:8123;" in conf
    for line in conf.splitlines():
        if line.strip().startswith(("pid", "error_log", "client_body_temp_path", "proxy_temp_path")):
            assert str(tmp_path / "prefix") in line


@requires_nginx
def test_serving_benchmark_runs_both_servers(tmp_path: Path) -> None:
    from bench.serving import main

    code = main(["--size-mib", "8", "--repeats", "1", "--streams", "8", "--results-dir", str(tmp_path)])
    assert code == 0
    record = json.loads((tmp_path / "serving.json").read_text())
    assert record["file"]["bytes"] == 8 * 2**20
    for key in ("single", "parallel"):
        result = record["results"][key]
        for server in ("ours", "nginx"):
            assert result[server]["errors"] == 0
            assert result[server]["sha256_failures"] == 0
            assert result[server]["median_mib_s"] > 0
        assert result["ratio_ours_over_nginx"] is not None
