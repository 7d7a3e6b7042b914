"""`sdk-build matrix --executor ray` on a real two-node Ray cluster started here (loopback, one CPU per node).

The cluster is started once for the module (`ray start --head` plus a second `ray start --address`), and the
driver runs as the real CLI in a subprocess, so each run gets its own Ray job (and the test hook's environment).
The tiny model keeps every float export to seconds; the bundles it gives are compared byte for byte with the local
executor's. The cluster (tests/ray_support.py) is torn down at the end, by its own process ids.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_support import ROOT, Cluster, ray_env, two_node_cluster

from sdk_build.artifacts.manifest import load_manifest
from sdk_build.matrix_checkpoints import checkpoint_list, output_folders

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'gemma-edge[ray]'")


MATRIX = """
checkpoint = "unused"
default_prefill_lengths = [32]

[targets.android-cpu]
variants = [
  { recipe = "dynamic_int8", ekv = 128 },
  { recipe = "fp32", ekv = 128 },
  { recipe = "dynamic_int8", ekv = 256 },
  { recipe = "fp32", ekv = 256 },
]
"""
FILES = sorted(f"Gemma3-Custom-IT_prefill-seq32_{q}_ekv{ekv}.task" for q in ("q8", "f32") for ekv in (128, 256))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """A head node and a second node on this machine, each offering 1 CPU and 6 GiB to tasks."""
    with two_node_cluster() as cluster:
        yield cluster


def _matrix(tmp_path: Path, checkpoints: list[Path], output: Path, cache: Path, executor: str, address: str = "",
            text: str = MATRIX, **env: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(text)
    table = output.with_suffix(".json")
    command = [sys.executable, "-m", "sdk_build", "matrix", "--matrix", str(matrix), "--output", str(output),
               "--cache-dir", str(cache), "--allow-custom-shape", "--executor", executor, "--report", str(table)]
    for checkpoint in checkpoints:
        command += ["--checkpoint", str(checkpoint)]
    extra = {"RAY_ADDRESS": address, **env} if address else env
    done = subprocess.run(command, env=ray_env(**extra), capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(table.read_text())


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.task"))}


def _manifest_intact(folder: Path, files: list[str] = FILES) -> None:
    """Every bundle has its entry, every entry's sha256 and size are its file's, and no staging folder is left."""
    manifest = load_manifest(folder)
    hashes = _hashes(folder)
    assert sorted(e.file for e in manifest.bundles) == sorted(hashes) == files
    for entry in manifest.bundles:
        assert entry.sha256 == hashes[entry.file] and entry.bytes == (folder / entry.file).stat().st_size
        assert entry.extra["targets"] == ["android-cpu"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".build-")]


@pytest.fixture(scope="module")
def ray_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own export cache: the first build must make both float exports (the session's shared cache
    may hold them already, from earlier tests), and the later tests reuse them."""
    return tmp_path_factory.mktemp("ray-cache")


@pytest.fixture(scope="module")
def ray_build(ray_cluster: Cluster, tiny_checkpoint_dir: Path, ray_cache: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], str]:
    """The tiny matrix (2 float exports x 2 recipes) built once on the cluster: (output, JSON rows, stderr)."""
    tmp = tmp_path_factory.mktemp("ray-matrix")
    done, rows = _matrix(tmp, [tiny_checkpoint_dir], tmp / "out", ray_cache, "ray", ray_cluster.address)
    return tmp / "out", rows, done.stderr


def test_tiny_matrix_builds_across_two_nodes_with_the_manifest_intact(
    ray_cluster: Cluster, ray_build: tuple[Path, list[dict], str], tiny_checkpoint_dir: Path, ray_cache: Path,
    tmp_path: Path,
) -> None:
    out, rows, log = ray_build
    assert sorted(r["file"] for r in rows) == FILES and not any(r["error"] for r in rows)
    nodes = {r["node_id"] for r in rows} | {r["export_node_id"] for r in rows if "export_node_id" in r}
    assert len(nodes) == 2, f"tasks ran on {nodes}; log:\n{log}"
    assert "(2 nodes)" in log and log.count("matrix: export ") == 2 and log.count("matrix: bundle ") == 4
    _manifest_intact(out)
    # an interrupted run resumes: one bundle lost, the rerun rebuilds only it (and makes no export: cached); this
    # time through the head's Ray client port (--executor ray://HOST:PORT)
    (out / FILES[0]).unlink()
    done, again = _matrix(tmp_path, [tiny_checkpoint_dir], out, ray_cache, ray_cluster.client)
    assert [r["file"] for r in again if not r["skipped"]] == [FILES[0]]
    assert "matrix: export " not in done.stderr
    _manifest_intact(out)


def test_a_worker_killed_mid_task_is_retried_and_the_result_complete(
    ray_cluster: Cluster, ray_build: tuple[Path, list[dict], str], tiny_checkpoint_dir: Path, ray_cache: Path,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "killed"
    out = tmp_path / "out"
    _, rows = _matrix(tmp_path, [tiny_checkpoint_dir], out, ray_cache, "ray", ray_cluster.address,
                      GEMMA_EDGE_RAY_KILL_ONCE=str(marker))
    assert marker.exists(), "no worker was killed: the test hook did not run"
    assert not any(r["error"] for r in rows) and not any(r["skipped"] for r in rows)
    _manifest_intact(out)
    assert _hashes(out) == _hashes(ray_build[0])


def test_local_executor_gives_byte_identical_bundles(
    ray_build: tuple[Path, list[dict], str], tiny_checkpoint_dir: Path, ray_cache: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "local"
    _, rows = _matrix(tmp_path, [tiny_checkpoint_dir], out, ray_cache, "local")
    assert not any(r["error"] for r in rows) and not any("node" in r for r in rows)
    _manifest_intact(out)
    assert _hashes(out) == _hashes(ray_build[0])


def test_many_checkpoints_in_one_command_get_one_folder_each(
    ray_cluster: Cluster, ray_build: tuple[Path, list[dict], str], tiny_checkpoint_dir: Path, ray_cache: Path,
    tmp_path: Path,
) -> None:
    # a copy of the tiny checkpoint under another path: another checkpoint to the CLI (its own folder, its own
    # manifest) with the same weights, so its float export is the cached one and the test makes no new export
    other = tmp_path / "fine-tune" / "tiny-checkpoint"
    shutil.copytree(tiny_checkpoint_dir, other)
    out = tmp_path / "many"
    one_group = MATRIX.split("  { recipe = \"dynamic_int8\", ekv = 256 }")[0] + "]\n"  # ekv 128 only
    _, rows = _matrix(tmp_path, [tiny_checkpoint_dir, other], out, ray_cache, "ray", ray_cluster.address,
                      text=one_group)
    assert not any(r["error"] for r in rows) and len(rows) == 4
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(folders) == 2 and all(f.startswith("tiny-checkpoint") for f in folders)
    assert {r["folder"] for r in rows} == {str(out / f) for f in folders}
    for folder in folders:
        _manifest_intact(out / folder, FILES[:1] + FILES[2:3])
    first, second = (out / f for f in folders)
    assert _hashes(first) == _hashes(second)  # the same weights
    refs = {load_manifest(out / f).bundles[0].checkpoint["ref"] for f in folders}
    assert refs == {str(tiny_checkpoint_dir), str(other)}


def test_output_folder_names_are_the_shortest_distinct_tails(tmp_path: Path) -> None:
    assert output_folders(["hf:google/gemma-3-1b-it"], tmp_path) == [tmp_path]
    assert output_folders(["runs/acme/final", "runs/zeta/final", "hf:google/gemma-3-1b-it"], tmp_path) == [
        tmp_path / "acme--final", tmp_path / "zeta--final", tmp_path / "google--gemma-3-1b-it"]
    listed = tmp_path / "list.txt"
    listed.write_text("# fine-tunes\nhf:a/b\n\nhf:c/d  # second\nhf:a/b\n")
    assert checkpoint_list(["hf:x/y"], listed, "default") == ["hf:x/y", "hf:a/b", "hf:c/d"]
    assert checkpoint_list(None, None, "embedded:gemma3-270m") == ["embedded:gemma3-270m"]


def test_missing_ray_and_unknown_executors_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdk_build.errors import BuildError
    from sdk_build.executors import check_executor
    from sdk_build.executors.ray_cluster import import_ray

    with pytest.raises(BuildError, match="unknown executor 'dask'.*ray://HEAD:PORT"):
        check_executor("dask")
    assert check_executor("ray://head:10001") == "ray://head:10001"
    monkeypatch.setitem(sys.modules, "ray", None)  # what Python does for a package that is not installed
    with pytest.raises(BuildError, match=r"pip install 'gemma-edge\[ray\]'"):
        import_ray()
