"""The npm runtimes the page imports, and exactly which of their files the browser may fetch.

Both LLM runtimes come from `web_demo/node_modules`, installed with `npm ci` from the pinned
`web_demo/package-lock.json`, and are served by this app under `/vendor/<name>/`; nothing is loaded from a CDN.
`@litert-lm/core` imports `@litertjs/wasm-utils` by its bare name, which the page's import map points at the
copy served here. Only the ES modules and wasm files a runtime loads are exposed, never package.json,
READMEs or sources.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class VendoredPackage:
    """One npm package as the page sees it: `/vendor/<name>/<path>` -> `<folder>/<path>` for allowed paths."""

    name: str
    npm: str
    config_key: str
    """The app.config key holding the package's installed folder."""
    required: tuple[str, ...]
    """Paths that exist once the package is installed (checked before serving anything from it)."""
    allowed: re.Pattern[str]
    label: str = ""
    """How messages name it (default: its npm name)."""

    def file(self, root: Path, path: str) -> Path | None:
        """The file to send for `path` under `root`, or None when the path is not one the page may load."""
        if not self.allowed.fullmatch(path) or any(part.startswith(".") for part in path.split("/")):
            return None
        candidate = root / path
        return candidate if candidate.is_file() else None


NODE_MODULES = Path(__file__).resolve().parent / "node_modules"

PACKAGES: tuple[VendoredPackage, ...] = (
    VendoredPackage(
        name="tasks-genai", npm="@mediapipe/tasks-genai", config_key="VENDOR_DIR", required=("genai_bundle.mjs", "wasm"),
        allowed=re.compile(r"genai_bundle\.mjs(\.map)?|wasm/[^/]+"),
        label="the MediaPipe web runtime (@mediapipe/tasks-genai)",
    ),
    VendoredPackage(
        name="litert-lm", npm="@litert-lm/core", config_key="LITERT_LM_DIR", required=("dist/index.js",),
        allowed=re.compile(r"dist/([a-z_]+/)?[a-z_]+\.js|wasm/litertlm_wasm[a-z_]*\.(js|wasm)"),
    ),
    VendoredPackage(
        name="litertjs-wasm-utils", npm="@litertjs/wasm-utils", config_key="LITERTJS_WASM_UTILS_DIR",
        required=("dist/index.js",), allowed=re.compile(r"dist/index\.js"),
    ),
)

DEFAULT_DIRS: dict[str, Path] = {p.config_key: NODE_MODULES / p.npm for p in PACKAGES}
MIMETYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".map": "application/json"}


def package(name: str) -> VendoredPackage | None:
    return next((p for p in PACKAGES if p.name == name), None)


__all__ = ["VendoredPackage", "PACKAGES", "DEFAULT_DIRS", "MIMETYPES", "NODE_MODULES", "package"]
