"""A manifest.json that is not one: every command says so in one line, the server answers JSON and stays up.

The cases are kinds of damage (wrong shape at each level, wrong types, not UTF-8, too deep, names that leave the
folder), not one file: each must be refused by `load_manifest` with the path and the field, by the CLI as one
line (exit 2, no traceback), and by the server as a JSON error on every machine route, `/api/health` saying what
is wrong, while the page itself still loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, list_bundle, live_server

from sdk_build.artifacts.manifest import load_manifest
from sdk_build.errors import ManifestError

ROOT = Path(__file__).resolve().parents[1]


def good_entry(folder: Path) -> dict[str, Any]:
    list_bundle(folder, "ok.task", b"\0\0\0\0bundle")
    return json.loads((folder / "manifest.json").read_text())["bundles"][0]


def damaged(entry: dict[str, Any]) -> dict[str, bytes]:
    def doc(**changes: Any) -> bytes:
        return json.dumps({"schema_version": 1, "bundles": [{**entry, **changes}]}).encode()

    return {
        "not utf-8": b'{"schema_version": 1, "bundles": [{"file": "\xff\xfe"}]}',
        "a list, not an object": b"[]",
        "bundles not a list": b'{"schema_version": 1, "bundles": {"a": 1}}',
        "an entry not an object": b'{"schema_version": 1, "bundles": [1]}',
        "schema_version a string": b'{"schema_version": "1", "bundles": []}',
        "bytes a string": doc(bytes="12"),
        "prefill_lengths a string": doc(prefill_lengths="32"),
        "prompt_template values not strings": doc(prompt_template={"user_prefix": 5}),
        "a negative size": doc(bytes=-1),
        "a bad sha256": doc(sha256="zz"),
        "a name with a folder": doc(file="../escape.task"),
        "a hidden name": doc(file=".manifest.lock"),
        "a name with an escape sequence": doc(file="a\x1b[2Jb.task"),
        "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
        "truncated": doc()[:-7],
    }


CASES = list(damaged({}).keys())


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return good_entry(tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize("case", CASES)
def test_load_manifest_refuses_it_naming_the_file(entry: dict[str, Any], tmp_path: Path, case: str) -> None:
    (tmp_path / "manifest.json").write_bytes(damaged(entry)[case])
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    message = str(caught.value)
    assert "manifest.json" in message and "\n" not in message and "\x1b" not in message


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sdk_build", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def assert_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("sdk-build: error:") and "Traceback" not in result.stderr, lines
    assert "\x1b" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_catalog_command_says_one_line(entry: dict[str, Any], tmp_path: Path, case: str) -> None:
    (tmp_path / "manifest.json").write_bytes(damaged(entry)[case])
    assert "manifest.json" in assert_one_line(cli("catalog", "--bundles", str(tmp_path)))


@pytest.mark.parametrize("case", ["not utf-8", "bundles not a list", "bytes a string", "a name with a folder"])
def test_build_and_verify_say_one_line(
    entry: dict[str, Any], tmp_path: Path, tiny_checkpoint_dir: Path, gemma_edge_cache: Path, case: str
) -> None:
    (tmp_path / "manifest.json").write_bytes(damaged(entry)[case])
    built = cli("build", "--checkpoint", str(tiny_checkpoint_dir), "--allow-custom-shape", "--recipe", "dynamic_int8",
                "--ekv", "128", "--prefill", "32", "--output", str(tmp_path), "--cache-dir", str(gemma_edge_cache))
    assert "manifest.json" in assert_one_line(built)
    (tmp_path / "x.task").write_bytes(b"\0\0\0\0")
    assert "manifest.json" in assert_one_line(cli("verify", str(tmp_path / "x.task")))


@pytest.fixture(scope="module")
def server(entry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    folder = tmp_path_factory.mktemp("served")
    good_entry(folder)
    with live_server({"BUNDLES_DIR": folder}) as live:
        yield live, folder


def fetch(live: LiveServer, path: str) -> tuple[int, str, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(live.base_url + path, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


@pytest.mark.parametrize("case", CASES)
def test_server_answers_json_and_health_says_what_is_wrong(
    server: tuple[LiveServer, Path], entry: dict[str, Any], case: str
) -> None:
    live, folder = server
    manifest = folder / "manifest.json"
    original = manifest.read_bytes()
    try:
        manifest.write_bytes(damaged(entry)[case])
        for path in ("/api/bundles", "/api/catalog", "/bundles/ok.task"):
            status, kind, body = fetch(live, path)
            assert status == 503 and kind.startswith("application/json"), (path, status, body[:200])
            assert "manifest.json" in json.loads(body)["error"]
        status, kind, body = fetch(live, "/api/health")
        health = json.loads(body)
        assert status == 503 and health["ok"] is False
        assert any("manifest.json" in problem for problem in health["problems"])
        assert fetch(live, "/")[0] == 200  # the page itself still loads
    finally:
        manifest.write_bytes(original)
    status, _, body = fetch(live, "/api/health")
    assert status == 200 and json.loads(body)["ok"] is True  # repaired: healthy again, no restart


def test_unknown_api_routes_and_methods_answer_json(server: tuple[LiveServer, Path]) -> None:
    live, _ = server
    for path in ("/api/no-such-route", "/bundles/no-such.task"):
        status, kind, body = fetch(live, path)
        assert status == 404 and kind.startswith("application/json") and json.loads(body)["error"]
