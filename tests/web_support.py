"""Helpers for the web demo tests: a real waitress server on a loopback port, and a bundle folder to serve.

Not fixtures (tests/conftest.py is shared); each test module builds its fixtures from these.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import shutil
import threading
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sdk_build.artifacts.manifest import BundleEntry, load_manifest, publish_bundle


def _have_chromium() -> bool:
    from web_demo.automation import find_chromium

    try:
        find_chromium()
        return True
    except Exception:  # pragma: no cover - depends on the machine
        return False


requires_chromium = pytest.mark.skipif(not _have_chromium(), reason="no Chromium (apt-get install chromium)")


def positive_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@dataclasses.dataclass
class LiveServer:
    base_url: str
    app: Any

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=30) as response:
            return json.load(response)


@contextlib.contextmanager
def live_server(config: Mapping[str, Any]) -> Iterator[LiveServer]:
    """`create_app(config)` under waitress (the production server) in a thread, on a free loopback port."""
    from web_demo import create_app
    from web_demo.wsgi_server import make_server

    app = create_app(config)
    server = make_server(app, "127.0.0.1", 0, threads=4)  # the production send path (sendfile), as __main__ uses
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{server.effective_port}", app=app)
    finally:
        # Close every socket from inside waitress's own loop (its trigger runs the thunk there): closing them from
        # this thread races the loop's select() and kills it with EBADF when a client just dropped a download.
        server.trigger.pull_trigger(lambda: [channel.close() for channel in list(server._map.values())])
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


def make_serving_dir(tiny_bundle_dir: Path, destination: Path) -> dict[str, Any]:
    """Copy the tiny bundles + manifest into `destination` and add test-only entries.

    Added: a pretrained (raw text) copy of the `.task`, an entry whose file is missing (download failure), a
    well-formed `.task` zip whose model is garbage (engine error), an unlisted file next to the bundles and a
    secret outside the folder (neither may ever be served).
    Returns {"task", "pt_task", "missing", "broken", "unlisted": names, "secret": Path, "entries": manifest}.
    """
    destination.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(tiny_bundle_dir)
    data = manifest.to_dict()
    for entry in manifest.bundles:
        shutil.copy2(tiny_bundle_dir / entry.file, destination / entry.file)
    task = next(e for e in manifest.bundles if e.format == "task")
    pt_name = task.file.replace(".task", "_pretrained.task")
    shutil.copy2(tiny_bundle_dir / task.file, destination / pt_name)
    pt = {**task.to_dict(), "file": pt_name, "instruction_tuned": False, "target": "test-pretrained",
          "prompt_template": {"user_prefix": "", "user_suffix": "", "model_prefix": "", "model_suffix": ""}}
    missing = {**task.to_dict(), "file": "missing_bundle.task", "target": "test-missing", "quantization": "none"}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for member in ("TF_LITE_PREFILL_DECODE", "TOKENIZER_MODEL", "METADATA"):
            zf.writestr(member, b"not a model " * 64)
    broken_bytes = b"\0\0\0\0" + archive.getvalue()
    (destination / "broken_model.task").write_bytes(broken_bytes)
    broken = {**task.to_dict(), "file": "broken_model.task", "target": "test-broken", "bytes": len(broken_bytes),
              "sha256": hashlib.sha256(broken_bytes).hexdigest()}
    data["bundles"] += [pt, missing, broken]
    (destination / "manifest.json").write_text(json.dumps(data, indent=2))
    (destination / "unlisted.task").write_bytes(b"\0\0\0\0not in the manifest")
    secret = destination.parent / "secret.txt"
    secret.write_text("top secret")
    return {"task": task.file, "pt_task": pt_name, "missing": "missing_bundle.task", "broken": "broken_model.task",
            "unlisted": "unlisted.task",
            "secret": secret, "entries": data["bundles"]}


def list_bundle(directory: Path, name: str, data: bytes) -> BundleEntry:
    """Publish `data` as bundle `name` in `directory` (file and manifest entry, as a build does): a stand-in file."""
    directory.mkdir(parents=True, exist_ok=True)
    staged = directory / f".staged-{name}"
    staged.write_bytes(data)
    entry = BundleEntry(
        file=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), model="test", quantization="none",
        ekv=0, prefill_lengths=[], target="test", format="task", instruction_tuned=False, start_token="",
        stop_tokens=[], prompt_template={}, checkpoint={"ref": "test", "fingerprint": ""}, spec_fingerprint="",
        tool_versions={}, build_seconds=0.0, peak_rss_bytes=0, created_utc="1970-01-01T00:00:00Z",
    )  # fmt: skip
    publish_bundle(directory, staged, entry)
    return entry
