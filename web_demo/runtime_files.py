"""Whether the browser runtime the page imports is installed, and how to install it when it is not.

Why a check of its own: the page imports the runtime as an ES module, so without it the page's script never runs
and the page would wait for ever. `python -m web_demo` says so at start-up, `/api/health` reports it, the vendor
route answers 503 with the same words, and the page shows them (static/js/runtime-check.js).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from web_demo.vendor import VendoredPackage

RUNTIME_ENTRY = "genai_bundle.mjs"
RUNTIME_WASM = "wasm"
INSTALL_HINT = "run `npm ci` in web_demo/ (or `bash scripts/setup.sh`), then reload the page"


def missing_runtime(vendor_dir: Path) -> str | None:
    """What is missing of the MediaPipe web runtime in `vendor_dir` and how to install it, or None when it is there."""
    vendor_dir = Path(vendor_dir)
    missing = [name for name in (RUNTIME_ENTRY, RUNTIME_WASM) if not (vendor_dir / name).exists()]
    if not missing:
        return None
    return (
        f"the MediaPipe web runtime (@mediapipe/tasks-genai) is not installed: {vendor_dir} lacks "
        f"{', '.join(missing)}; {INSTALL_HINT}"
    )


def missing_package(spec: VendoredPackage, root: Path) -> str | None:
    """`missing_runtime` for any vendored package (`web_demo.vendor.PACKAGES`): what is missing and how to install
    it, or None."""
    if spec.name == "tasks-genai":
        return missing_runtime(root)
    if (Path(root) / spec.marker).is_file():
        return None
    return f"{spec.npm} is not installed: {root} lacks {spec.marker}; {INSTALL_HINT}"
