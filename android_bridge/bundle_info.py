"""What the result record needs to know about a bundle file: sha256, quantization, ekv.

Taken from the `manifest.json` beside the bundle (written by `sdk_build`, schema_version 1) when it has an
entry of the same name and size; otherwise the sha256 is computed and the rest guessed from the file name
(`..._q8_ekv1024.task`), so a bundle from anywhere can still be benchmarked.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from android_bridge.push import sha256_file
from sdk_build.artifacts.naming import recipe_from_file_name


@dataclasses.dataclass
class BundleInfo:
    path: Path
    sha256: str
    quantization: str
    ekv: int
    size: int
    model: str = ""
    prefill_lengths: list[int] = dataclasses.field(default_factory=list)


def bundle_info(path: Path) -> BundleInfo:
    path = Path(path)
    size = path.stat().st_size
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8")).get("bundles", [])
        except (json.JSONDecodeError, AttributeError):
            entries = []
        for entry in entries:
            if entry.get("file") == path.name and entry.get("bytes") == size and entry.get("sha256"):
                return BundleInfo(path, entry["sha256"], entry.get("quantization", ""), int(entry.get("ekv", 0)), size,
                                  entry.get("model", ""), [int(n) for n in entry.get("prefill_lengths", [])])
    ekv = re.search(r"ekv(\d+)", path.name)
    recipe = recipe_from_file_name(path.name)  # the lab matches baselines by Recipe value, so no other vocabulary
    quant = recipe.value if recipe else "unknown"
    return BundleInfo(path, sha256_file(path), quant, int(ekv.group(1)) if ekv else 0, size)
