"""Pick the bundles a lab run measures from `manifest.json`, with `--select key=value` filters.

The manifest (sdk_build's output) is the one source of what a bundle is: its recipe, KV cache, prefill
signatures and sha256 come from there, never from parsing file names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from device_tests.errors import LabError
from device_tests.runners.host import BundleInfo

SELECTABLE = ("file", "model", "quantization", "ekv", "target", "format")


def parse_selectors(selectors: Sequence[str]) -> dict[str, set[str]]:
    """`["quantization=dynamic_int8,int4_qat", "format=task"]` -> {key: allowed values}."""
    parsed: dict[str, set[str]] = {}
    for selector in selectors:
        key, sep, value = selector.partition("=")
        if not sep or not value:
            raise LabError(f"--select {selector!r}: expected KEY=VALUE[,VALUE...]")
        if key not in SELECTABLE:
            raise LabError(f"--select {selector!r}: unknown key {key!r}; choose one of: {', '.join(SELECTABLE)}")
        parsed.setdefault(key, set()).update(v.strip() for v in value.split(","))
    return parsed


def select_bundles(bundles_dir: Path, selectors: Sequence[str] = (), formats: Sequence[str] = ()) -> list[BundleInfo]:
    """Bundles of the manifest in `bundles_dir` that pass every selector (and are one of `formats`, if given)."""
    from sdk_build.artifacts.manifest import load_manifest
    from sdk_build.errors import BuildError

    bundles_dir = Path(bundles_dir)
    if not bundles_dir.is_dir():
        raise LabError(f"bundle folder {bundles_dir} does not exist; build bundles first (sdk-build)")
    try:
        manifest = load_manifest(bundles_dir)
    except BuildError as exc:
        raise LabError(str(exc)) from exc
    if not manifest.bundles:
        raise LabError(f"{bundles_dir} has no manifest.json entries; build bundles first (sdk-build)")
    wanted = parse_selectors(selectors)
    chosen = []
    for entry in manifest.bundles:
        values = {key: str(getattr(entry, key)) for key in SELECTABLE}
        if any(values[key] not in allowed for key, allowed in wanted.items()):
            continue
        if formats and entry.format not in formats:
            continue
        path = bundles_dir / entry.file
        if not path.is_file():
            raise LabError(f"{path} is listed in the manifest but missing; rebuild it")
        chosen.append(
            BundleInfo(
                path=path,
                sha256=entry.sha256,
                quantization=entry.quantization,
                ekv=entry.ekv,
                model=entry.model,
                bundle_format=entry.format,
                prefill_signatures=tuple(entry.prefill_lengths),
                bytes=entry.bytes,
                largest_tensors=tuple(entry.extra.get("largest_tensors") or ()),
            )
        )
    if not chosen:
        available = ", ".join(f"{b.file} ({b.quantization}, {b.format})" for b in manifest.bundles)
        raise LabError(
            f"no bundle in {bundles_dir} matches {list(selectors)} (formats {list(formats)}); have: {available}"
        )
    return chosen
