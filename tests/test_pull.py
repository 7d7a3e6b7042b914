"""`sdk-build pull` against the real web demo server (waitress) on loopback, and against static and Hub-like hosts.

What must hold: one bundle pulls whole; a second pull transfers nothing; a transfer the network drops half way
resumes (Range + If-Range on the sha256 ETag) to a correct file; a file changed on the server after the catalog
was written is refused and nothing is left behind; selection by target, quantization and ekv; catalogs from a
catalog.json URL, a folder, and `hf:` through huggingface_hub (HF_ENDPOINT on loopback; offline fails fast).
The network faults come from `pull_support` (a proxy that cuts the connection); the client is never replaced.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pull_support import CuttingProxy, static_host
from web_support import LiveServer, live_server

from sdk_build.artifacts.catalog import CATALOG_NAME, Selection, write_catalog
from sdk_build.artifacts.manifest import BundleEntry, load_manifest, sha256_file
from sdk_build.distribute.download import partial_path, state_path
from sdk_build.distribute.pull import plan, pull
from sdk_build.errors import CatalogError, PullError

ROOT = Path(__file__).resolve().parents[1]
HF_REPO = "gemma-edge/tiny-bundles"


@pytest.fixture(scope="module")
def origin(
    tiny_bundle_dir: Path, tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny int8 .task/.litertlm plus an int4 web-gpu .task (same float export: quantize + bundle only)."""
    from sdk_build.convert.export import ExportOptions
    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    folder = tmp_path_factory.mktemp("pull-origin") / "bundles"
    shutil.copytree(tiny_bundle_dir, folder, ignore=shutil.ignore_patterns("*.xnnpack_cache", ".*"))
    entry = load_manifest(folder).bundles[0]
    web = make_variant("dynamic_int4_block32", entry.ekv, entry.prefill_lengths, formats=["task"], target="web-gpu")
    same_export = ExportOptions(window_kv_cache=entry.extra["export_options"].get("window_kv_cache", False))
    build(str(tiny_checkpoint_dir), web, folder, cache_dir=gemma_edge_cache, allow_custom_shape=True,
          export_options=same_export)
    return folder


@pytest.fixture(scope="module")
def server(origin: Path) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": origin}) as live:
        yield live


def entries(folder: Path) -> list[BundleEntry]:
    return load_manifest(folder).bundles


def task_int8(folder: Path) -> BundleEntry:
    return next(e for e in entries(folder) if e.format == "task" and e.quantization == "dynamic_int8")


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.startswith("."))


def headers_of(request: str) -> dict[str, str]:
    lines = request.split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def proxy_for(server: LiveServer, cut_after: int, cuts: int = 1) -> CuttingProxy:
    host, port = server.base_url.removeprefix("http://").split(":")
    return CuttingProxy((host, int(port)), cut_after=cut_after, cuts=cuts)


def test_pull_one_bundle_then_a_second_pull_transfers_nothing(server: LiveServer, origin: Path, tmp_path: Path) -> None:
    entry = task_int8(origin)
    dest = tmp_path / "models"
    with proxy_for(server, cut_after=0, cuts=0) as proxy:  # a plain pass-through that logs requests
        selection = Selection(target="android-cpu", quantization="dynamic_int8", format="task")
        first = pull(proxy.base_url, dest, selection)
        assert not first.failures and [r.name for r in first.results] == [entry.file]
        result = first.results[0]
        assert result.status == "downloaded" and result.transferred == entry.bytes
        assert sha256_file(dest / entry.file) == entry.sha256
        assert sorted(p.name for p in dest.iterdir()) == [entry.file]  # no partial or state files
        requests_before = len(proxy.bundle_requests())
        assert requests_before == 1

        second = pull(proxy.base_url, dest, selection)
        assert [(r.status, r.transferred) for r in second.results] == [("up-to-date", 0)]
        assert len(proxy.bundle_requests()) == requests_before  # not one byte of the bundle asked for
        assert proxy.requests[-1].startswith("GET /api/catalog ")


def test_selection_by_target_quantization_and_ekv(server: LiveServer, origin: Path, tmp_path: Path) -> None:
    every = entries(origin)
    assert {e.target for e in every} == {"android-cpu", "web-gpu"}

    def pulled(**filters: object) -> set[str]:
        dest = tmp_path / "-".join(f"{k}{v}" for k, v in filters.items())
        report = pull(server.base_url, dest, Selection(**filters))  # type: ignore[arg-type]
        assert not report.failures
        assert {p.name for p in dest.iterdir()} == {r.name for r in report.results}
        return {r.name for r in report.results}

    assert pulled(target="web-gpu") == {e.file for e in every if e.target == "web-gpu"}
    assert pulled(quantization="dynamic_int8") == {e.file for e in every if e.quantization == "dynamic_int8"}
    assert pulled(target="android-cpu", format="litertlm") == {
        e.file for e in every if e.target == "android-cpu" and e.format == "litertlm"
    }
    ekv = every[0].ekv
    assert pulled(ekv=ekv) == {e.file for e in every if e.ekv == ekv}
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdk_build",
            "pull",
            "--from",
            server.base_url,
            "--target",
            "web-gpu",
            "--list",
            "--output",
            str(tmp_path / "unused"),
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()[1:]] == [
        e.file for e in every if e.target == "web-gpu"
    ]
    assert not (tmp_path / "unused").exists()  # --list downloads nothing
    with pytest.raises(CatalogError, match=rf"matches ekv=1024; .*ekv \[{ekv}\]"):
        plan(server.base_url, Selection(ekv=1024))


def test_dropped_connection_leaves_a_partial_that_the_next_pull_resumes(
    server: LiveServer, origin: Path, tmp_path: Path
) -> None:
    entry = task_int8(origin)
    dest = tmp_path / "models"
    selection = Selection(file=entry.file)
    with proxy_for(server, cut_after=entry.bytes // 2) as proxy:
        broken = pull(proxy.base_url, dest, selection, retries=0)
        assert proxy.cut_count == 1 and not broken.results
        [(name, message)] = broken.failures
        assert name == entry.file and "run the same pull again to resume" in message
        have = partial_path(dest, entry.file).stat().st_size
        assert 0 < have < entry.bytes
        assert state_path(dest, entry.file).is_file() and not (dest / entry.file).exists()

        resumed = pull(proxy.base_url, dest, selection, retries=0)
        assert not resumed.failures
        [result] = resumed.results
        assert (result.status, result.resumed_from, result.transferred) == ("resumed", have, entry.bytes - have)
        retry = headers_of(proxy.bundle_requests()[-1])
        assert retry["range"] == f"bytes={have}-" and retry["if-range"] == f'"{entry.sha256}"'
    assert (
        sha256_file(dest / entry.file) == entry.sha256 == hashlib.sha256((origin / entry.file).read_bytes()).hexdigest()
    )
    assert leftovers(dest) == []


def test_a_drop_is_resumed_within_one_pull(server: LiveServer, origin: Path, tmp_path: Path) -> None:
    entry = task_int8(origin)
    with proxy_for(server, cut_after=entry.bytes // 3) as proxy:
        report = pull(proxy.base_url, tmp_path, Selection(file=entry.file), retries=2)
    [result] = report.results
    assert proxy.cut_count == 1 and result.attempts == 2 and result.status == "resumed"
    assert sha256_file(tmp_path / entry.file) == entry.sha256 and leftovers(tmp_path) == []


def test_tampered_file_on_the_server_is_refused_and_nothing_is_left(origin: Path, tmp_path: Path) -> None:
    """A plain static host (no sha256 header; our own server refuses such a file, test_web_identity) serves a
    file changed after its catalog.json was written: pull's own hashing refuses it."""
    folder = tmp_path / "served"
    shutil.copytree(origin, folder)
    write_catalog(folder)
    entry = task_int8(folder)
    with static_host(folder) as (base, _):
        catalog_url = base + "/" + CATALOG_NAME
        # The catalog is what the client saw; then one byte in the middle changes on disk (same size).
        with open(folder / entry.file, "r+b") as handle:
            handle.seek(entry.bytes // 2)
            byte = handle.read(1)
            handle.seek(entry.bytes // 2)
            handle.write(bytes([byte[0] ^ 0xFF]))
        dest = tmp_path / "models"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sdk_build",
                "pull",
                "--from",
                catalog_url,
                "--file",
                entry.file,
                "--output",
                str(dest),
            ],
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GEMMA_EDGE_QUIET": "1"},
        )
    assert result.returncode != 0
    assert f"the catalog says {entry.sha256}" in result.stderr and "Nothing was kept" in result.stderr
    assert list(dest.iterdir()) == []


def test_a_corrupt_local_copy_is_replaced_and_a_stale_partial_is_restarted(
    server: LiveServer, origin: Path, tmp_path: Path
) -> None:
    entry = task_int8(origin)
    (tmp_path / entry.file).write_bytes(b"\0" * entry.bytes)  # right size, wrong bytes
    partial_path(tmp_path, entry.file).write_bytes(b"x" * 1000)  # a partial of some other file
    state_path(tmp_path, entry.file).write_text('{"sha256": "' + "0" * 64 + '", "bytes": 5, "validator": "\\"x\\""}')
    [result] = pull(server.base_url, tmp_path, Selection(file=entry.file)).results
    assert result.replaced_bad_file and result.status == "downloaded" and result.resumed_from == 0
    assert result.transferred == entry.bytes and sha256_file(tmp_path / entry.file) == entry.sha256
    assert leftovers(tmp_path) == []


def test_server_saying_another_sha256_is_refused_before_the_transfer(origin: Path, tmp_path: Path) -> None:
    """A stale catalog: the server's X-Content-SHA256 differs from the catalog's, so nothing is downloaded."""
    folder = tmp_path / "static"
    shutil.copytree(origin, folder)
    path, _ = write_catalog(folder)
    entry = task_int8(folder)
    path.write_text(path.read_text().replace(entry.sha256, "f" * 64))
    with live_server({"BUNDLES_DIR": folder}) as live:
        # The real server sends the manifest's sha256; the catalog from elsewhere (file) points at it.
        text = path.read_text().replace(f'"url": "{entry.file}"', f'"url": "{live.base_url}/bundles/{entry.file}"')
        path.write_text(text)
        report = pull(str(path), tmp_path / "models", Selection(file=entry.file))
    [(_, message)] = report.failures
    assert f"the server says its sha256 is {entry.sha256}" in message
    assert list((tmp_path / "models").iterdir()) == []


def test_another_pull_into_the_same_file_is_refused(server: LiveServer, origin: Path, tmp_path: Path) -> None:
    entry = task_int8(origin)
    with open(partial_path(tmp_path, entry.file), "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        report = pull(server.base_url, tmp_path, Selection(file=entry.file))
    [(_, message)] = report.failures
    assert "another pull is downloading into" in message


def test_pull_from_a_catalog_json_url_a_static_host_and_a_folder(origin: Path, tmp_path: Path) -> None:
    folder = tmp_path / "static"
    shutil.copytree(origin, folder)
    write_catalog(folder)
    wanted = {e.file: e.sha256 for e in entries(folder)}
    with static_host(folder) as (base, log):
        for source, dest in ((base + "/" + CATALOG_NAME, tmp_path / "a"), (base, tmp_path / "b")):
            report = pull(source, dest, Selection())
            assert not report.failures and {r.name for r in report.results} == set(wanted)
            assert {p.name: sha256_file(p) for p in dest.iterdir()} == wanted
        assert any(r["path"] == "/api/catalog" for r in log)  # --from BASE tried the server API first
    report = pull(str(folder), tmp_path / "c", Selection(format="task"))  # a folder: file: URLs
    assert {r.status for r in report.results} == {"downloaded"}
    assert {p.name: sha256_file(p) for p in (tmp_path / "c").iterdir()} == {
        e.file: e.sha256 for e in entries(folder) if e.format == "task"
    }


def test_hf_catalog_goes_through_huggingface_hub(origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(origin, repo)
    write_catalog(repo)
    commit = "c0ffee" + "0" * 34
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants  # reads HF_HUB_OFFLINE once, at import: an earlier test may have set it

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with static_host(repo, hf_repo=HF_REPO, commit=commit) as (base, log):
        monkeypatch.setenv("HF_ENDPOINT", base)
        report = pull(f"hf:{HF_REPO}", tmp_path / "models", Selection(target="web-gpu"), cache_dir=tmp_path / "cache")
    assert not report.failures and report.catalog == f"hf:{HF_REPO}@{commit}"
    [result] = report.results
    web = next(e for e in entries(repo) if e.target == "web-gpu")
    assert result.name == web.file and sha256_file(tmp_path / "models" / web.file) == web.sha256
    assert any(r["path"] == f"/{HF_REPO}/resolve/main/{CATALOG_NAME}" for r in log)  # huggingface_hub's request
    assert [r["method"] for r in log if r["path"] == f"/{HF_REPO}/resolve/{commit}/{web.file}"] == ["GET"]
    assert list((tmp_path / "cache" / "hf").rglob(CATALOG_NAME))  # cached by huggingface_hub
    # The Hub is gone now (host stopped): the cached catalog is used and the file present is not fetched again.
    again = pull(f"hf:{HF_REPO}", tmp_path / "models", Selection(target="web-gpu"), cache_dir=tmp_path / "cache")
    assert [(r.status, r.transferred) for r in again.results] == [("up-to-date", 0)]


def test_hf_catalog_offline_fails_quickly_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants  # reads HF_HUB_OFFLINE once, at import: an earlier test may have set it

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    started = time.monotonic()
    with pytest.raises(PullError, match=rf"offline or blocked \(127.0.0.1:{closed_port}: Connection refused\)"):
        pull(f"hf:{HF_REPO}", tmp_path / "models", Selection(), cache_dir=tmp_path / "cache")
    assert time.monotonic() - started < 10  # huggingface_hub alone retries for about 25 s
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []
