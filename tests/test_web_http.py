"""HTTP behaviour of the web demo against the real app under waitress on loopback (no test client, no mocks).

Covers what download clients rely on: Content-Length, strong ETag = sha256, Range/206/416, If-Range,
If-None-Match/304, the sha256 headers, that only manifest-listed files are reachable, the /api/bundles
filters, benchmark result storage, the vendored runtime, and `python -m web_demo` starting on its own.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_support import LiveServer, live_server, make_serving_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tiny_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_serving_dir(tiny_bundle_dir, tmp_path_factory.mktemp("web-http") / "bundles")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-results")


@pytest.fixture(scope="module")
def server(served: dict[str, Any], results_dir: Path) -> Iterator[LiveServer]:
    with live_server({"BUNDLES_DIR": served["secret"].parent / "bundles", "RESULTS_DIR": results_dir}) as live:
        yield live


def request(server: LiveServer, path: str, method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Raw request: the path goes on the wire exactly as given (no client-side normalisation of `..`)."""
    host, port = urllib.parse.urlsplit(server.base_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def bundle_bytes(served: dict[str, Any]) -> bytes:
    return (served["secret"].parent / "bundles" / served["task"]).read_bytes()


def task_entry(served: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in served["entries"] if e["file"] == served["task"])


def test_full_download_has_length_strong_etag_and_sha256(server: LiveServer, served: dict[str, Any]) -> None:
    data, entry = bundle_bytes(served), task_entry(served)
    status, headers, body = request(server, f"/bundles/{served['task']}")
    assert status == 200 and body == data
    assert int(headers["Content-Length"]) == len(data) == entry["bytes"]
    assert headers["ETag"] == f'"{entry["sha256"]}"'  # strong: no W/ prefix
    assert headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"


def test_head_sends_headers_without_body(server: LiveServer, served: dict[str, Any]) -> None:
    status, headers, body = request(server, f"/bundles/{served['task']}", method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == task_entry(served)["bytes"]
    assert headers["X-Content-SHA256"] == task_entry(served)["sha256"]


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [("bytes=0-99", 0, 100), ("bytes=4-4", 4, 5), ("bytes=1000-", 1000, None), ("bytes=-10", -10, None)],
)
def test_single_range_gives_206(server: LiveServer, served: dict[str, Any], range_header: str, start: int,
                                stop: int | None) -> None:
    data = bundle_bytes(served)
    expected = data[start:stop]
    first = start if start >= 0 else len(data) + start
    status, headers, body = request(server, f"/bundles/{served['task']}", headers={"Range": range_header})
    assert status == 206
    assert body == expected
    assert int(headers["Content-Length"]) == len(expected)
    assert headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert headers["ETag"] == f'"{task_entry(served)["sha256"]}"'


@pytest.mark.parametrize("range_header", ["bytes=999999999-", "bytes=999999999-1000000000", "bytes=abc", "bytes=9-2"])
def test_unsatisfiable_range_gives_416(server: LiveServer, served: dict[str, Any], range_header: str) -> None:
    status, headers, _ = request(server, f"/bundles/{served['task']}", headers={"Range": range_header})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{task_entry(served)['bytes']}"


@pytest.mark.parametrize("range_header", ["items=0-5", "bytes=0-1,5-9"])
def test_unknown_unit_or_multi_range_gives_whole_file(server: LiveServer, served: dict[str, Any], range_header: str) -> None:
    # RFC 9110: ignore an unknown range unit; a server may also ignore multi-range requests (we serve single ones).
    status, _, body = request(server, f"/bundles/{served['task']}", headers={"Range": range_header})
    assert status == 200 and body == bundle_bytes(served)


@pytest.mark.parametrize("extra", [1, 10**9])
def test_a_suffix_range_longer_than_the_file_selects_the_whole_file(
    server: LiveServer, served: dict[str, Any], extra: int
) -> None:
    """RFC 9110 14.1.2: a suffix-length beyond the representation's length selects all of it (206, not 416)."""
    data = bundle_bytes(served)
    status, headers, body = request(server, f"/bundles/{served['task']}", headers={"Range": f"bytes=-{len(data) + extra}"})
    assert status == 206 and body == data
    assert headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    status, _, _ = request(server, f"/bundles/{served['task']}", headers={"Range": "bytes=-0"})
    assert status == 416  # a zero-length suffix selects nothing


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_failing_preconditions_give_412_without_the_body(server: LiveServer, served: dict[str, Any], method: str) -> None:
    sha, data = task_entry(served)["sha256"], bundle_bytes(served)
    failing = [
        {"If-Match": '"stale"'},
        {"If-Match": f'W/"{sha}"'},  # If-Match compares strongly: a weak tag never matches
        {"If-Match": '"stale"', "Range": "bytes=0-9"},  # preconditions come before the range
        {"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"},
    ]
    for headers in failing:
        status, answer, body = request(server, f"/bundles/{served['task']}", method=method, headers=headers)
        assert status == 412, headers
        assert len(body) < 1000 and data[:64] not in body, headers
        assert answer["ETag"] == f'"{sha}"'
    passing = [{"If-Match": f'"{sha}"'}, {"If-Match": f'"other", "{sha}"'}, {"If-Match": "*"},
               {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}]
    for headers in passing:
        status, _, body = request(server, f"/bundles/{served['task']}", method=method, headers=headers)
        assert status == 200 and body == (data if method == "GET" else b""), headers


def test_if_none_match_gives_304(server: LiveServer, served: dict[str, Any]) -> None:
    sha = task_entry(served)["sha256"]
    for value in (f'"{sha}"', f'W/"{sha}"', f'"other", "{sha}"', "*"):
        status, headers, body = request(server, f"/bundles/{served['task']}", headers={"If-None-Match": value})
        assert (status, body) == (304, b""), value
        assert headers["ETag"] == f'"{sha}"'
    status, _, body = request(server, f"/bundles/{served['task']}", headers={"If-None-Match": '"stale"'})
    assert status == 200 and body == bundle_bytes(served)


def test_if_range_resumes_only_the_same_representation(server: LiveServer, served: dict[str, Any]) -> None:
    sha, data = task_entry(served)["sha256"], bundle_bytes(served)
    status, _, body = request(server, f"/bundles/{served['task']}", headers={"Range": "bytes=10-19", "If-Range": f'"{sha}"'})
    assert status == 206 and body == data[10:20]
    status, _, body = request(server, f"/bundles/{served['task']}", headers={"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert status == 200 and body == data
    # A weak validator never matches If-Range (strong comparison).
    status, _, body = request(server, f"/bundles/{served['task']}", headers={"Range": "bytes=10-19", "If-Range": f'W/"{sha}"'})
    assert status == 200 and body == data


@pytest.mark.parametrize(
    "path",
    [
        "/bundles/../manifest.json", "/bundles/..%2Fmanifest.json", "/bundles/%2e%2e/secret.txt",
        "/bundles/..%2Fsecret.txt", "/bundles/../../secret.txt", "/bundles/%2e%2e%2fsecret.txt",
        "/bundles//etc/passwd", "/bundles/..\\secret.txt", "/bundles/sub/../manifest.json",
        "/bundles/manifest.json", "/bundles/.manifest.lock", "/bundles/unlisted.task", "/bundles/", "/bundles/%00",
    ],
)
def test_only_listed_files_are_reachable(server: LiveServer, served: dict[str, Any], path: str) -> None:
    status, _, body = request(server, path)
    assert status == 404, (path, status)
    assert b"top secret" not in body and b"not in the manifest" not in body and b'"bundles"' not in body


def test_listed_but_missing_file_is_a_clear_409(server: LiveServer, served: dict[str, Any]) -> None:
    status, _, body = request(server, f"/bundles/{served['missing']}")
    assert status == 409
    assert "missing on disk" in json.loads(body)["error"]


def test_api_bundles_lists_and_filters(server: LiveServer, served: dict[str, Any]) -> None:
    everything = server.get_json("/api/bundles")
    assert [b["file"] for b in everything["bundles"]] == [e["file"] for e in served["entries"]]
    for b in everything["bundles"]:
        assert b["url"] == f"{server.base_url}/bundles/{b['file']}" and b["path"] == f"/bundles/{b['file']}"
        assert {"sha256", "bytes", "ekv", "quantization", "target", "instruction_tuned", "prompt_template"} <= set(b)
    task = task_entry(served)
    by_target = server.get_json(f"/api/bundles?target={task['target']}")["bundles"]
    assert by_target and all(b["target"] == task["target"] for b in by_target)
    assert served["pt_task"] not in {b["file"] for b in by_target}
    by_quant = server.get_json("/api/bundles?quantization=none")["bundles"]
    assert [b["file"] for b in by_quant] == [served["missing"]]
    both = server.get_json(f"/api/bundles?target={task['target']}&quantization=dynamic_int8&format=task")
    assert [b["file"] for b in both["bundles"]] == [served["task"]]
    assert both["filters"] == {"target": task["target"], "quantization": "dynamic_int8", "format": "task"}
    assert server.get_json("/api/bundles?target=no-such-target")["bundles"] == []


def test_manifest_changes_are_picked_up_without_restart(server: LiveServer, served: dict[str, Any]) -> None:
    manifest = served["secret"].parent / "bundles" / "manifest.json"
    original = manifest.read_text()
    data = json.loads(original)
    data["bundles"] = [b for b in data["bundles"] if b["file"] != served["pt_task"]]
    try:
        manifest.write_text(json.dumps(data))
        os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        assert served["pt_task"] not in {b["file"] for b in server.get_json("/api/bundles")["bundles"]}
        assert request(server, f"/bundles/{served['pt_task']}")[0] == 404
    finally:
        manifest.write_text(original)
        os.utime(manifest, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert served["pt_task"] in {b["file"] for b in server.get_json("/api/bundles")["bundles"]}


def test_bench_results_round_trip(server: LiveServer, results_dir: Path) -> None:
    payload = {"schema": "gemma-edge.web-bench/1", "ok": True, "summary": {"decode_tok_s": 12.5}}
    status, _, body = request(server, "/api/bench-results", "POST", {"Content-Type": "application/json"},
                              json.dumps(payload).encode())
    assert status == 201
    created = json.loads(body)
    record = server.get_json(f"/api/bench-results/{created['id']}")
    assert record["result"] == payload
    assert any(r["id"] == created["id"] for r in server.get_json("/api/bench-results")["results"])
    assert json.loads((results_dir / created["file"]).read_text())["result"] == payload
    status, _, _ = request(server, "/api/bench-results", "POST", {"Content-Type": "application/json"}, b"[1, 2]")
    assert status == 400
    status, _, _ = request(server, "/api/bench-results", "POST", {"Content-Type": "application/json"}, b"{not json")
    assert status == 400
    assert request(server, "/api/bench-results/999999")[0] == 404


def test_runtime_is_served_locally(server: LiveServer) -> None:
    status, headers, body = request(server, "/vendor/tasks-genai/genai_bundle.mjs")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"LlmInference" in body
    status, headers, body = request(server, "/vendor/tasks-genai/wasm/genai_wasm_internal.wasm", method="HEAD")
    assert status == 200 and headers["Content-Type"] == "application/wasm"
    status, headers, body = request(server, "/vendor/litert-lm/dist/index.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"./engine.js" in body
    status, headers, _ = request(server, "/vendor/litert-lm/wasm/litertlm_wasm_internal.wasm", method="HEAD")
    assert status == 200 and headers["Content-Type"] == "application/wasm"
    status, _, body = request(server, "/vendor/litertjs-wasm-utils/dist/index.js")
    assert status == 200 and b"createWasmLib" in body
    for path in ("/vendor/tasks-genai/package.json", "/vendor/tasks-genai/../../package.json", "/vendor/tasks-genai/wasm/../README.md",
                 "/vendor/litert-lm/package.json", "/vendor/litert-lm/README.md", "/vendor/litert-lm/dist/index.d.ts",
                 "/vendor/litert-lm/dist/../package.json", "/vendor/litertjs-wasm-utils/package.json", "/vendor/other/x.js"):
        assert request(server, path)[0] == 404, path
    health = server.get_json("/api/health")
    assert health["runtimes"] == {"tasks-genai": True, "litert-lm": True, "litertjs-wasm-utils": True}
    status, _, body = request(server, "/")
    assert status == 200 and b'src="/static/js/main.js"' in body
    assert b"cdn" not in body.lower() and b"https://" not in body


def test_page_assets_reference_no_cdn() -> None:
    for path in (ROOT / "web_demo" / "static").rglob("*"):
        if path.suffix in {".js", ".html", ".css"}:
            text = path.read_text()
            assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", text), path


def test_cli_starts_under_waitress(served: dict[str, Any], tmp_path: Path) -> None:
    bundles = served["secret"].parent / "bundles"
    proc = subprocess.Popen(
        [sys.executable, "-m", "web_demo", "--bundles", str(bundles), "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        conn.request("HEAD", f"/bundles/{served['task']}")
        response = conn.getresponse()
        assert response.status == 200 and response.headers["Server"] == "waitress"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_rejects_a_missing_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "web_demo", "--bundles", str(tmp_path / "nope"), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert result.returncode == 2 and "is not a folder" in result.stderr
