"""Whether the browser runtime the page imports is installed, and how to install it when it is not.

Why a check of its own: the page imports the runtime as an ES module, so without it the page's script never runs
and the page would wait for ever. `python -m web_demo` says so at start-up, `/api/health` reports it, the vendor
route answers 503 with the same words, and the page shows them (static/js/runtime-check.js).
"""

from __future__ import annotations

from pathlib import Path

from web_demo.vendor import VendoredPackage, package

INSTALL_HINT = "run `npm ci` in web_demo/ (or `bash scripts/setup.sh`), then reload the page"


def missing_package(spec: VendoredPackage, root: Path) -> str | None:
    """What is missing of the vendored npm package `spec` in `root` and how to install it, or None when it is
    there."""
    root = Path(root)
    missing = [name for name in spec.required if not (root / name).exists()]
    if not missing:
        return None
    return f"{spec.label or spec.npm} is not installed: {root} lacks {', '.join(missing)}; {INSTALL_HINT}"


def missing_runtime(vendor_dir: Path) -> str | None:
    """`missing_package` for the MediaPipe web runtime, the one the page cannot start without."""
    mediapipe = package("tasks-genai")
    assert mediapipe is not None
    return missing_package(mediapipe, vendor_dir)
