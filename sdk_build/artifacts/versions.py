"""Versions of the tools that shape a bundle's bytes: recorded in the manifest and part of the spec fingerprint."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

TOOLS = ("litert-torch", "ai-edge-quantizer", "mediapipe", "litert-lm-builder", "torch", "ai-edge-litert")


@functools.cache
def tool_versions() -> dict[str, str]:
    import sdk_build

    found = {"gemma-edge": sdk_build.__version__}
    for tool in TOOLS:
        try:
            found[tool] = version(tool)
        except PackageNotFoundError:
            found[tool] = "missing"
    return found
