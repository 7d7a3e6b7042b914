"""Read variant tables from TOML files: the main job's bundle set here, and the helpers the matrix file shares."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sdk_build.errors import SpecError
from sdk_build.spec import VariantSpec, make_variant

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
VARIANT_KEYS = frozenset({"recipe", "ekv", "prefill_lengths", "formats", "output_name"})


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"{path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from exc


def variant_from_table(item: dict[str, Any], where: str, *, target: str | None = None,
                       prefill_lengths: list[int] | None = None) -> VariantSpec:
    """One `{recipe = ..., ekv = ...}` table -> VariantSpec; `target` given means the table may not set its own."""
    allowed = VARIANT_KEYS if target is not None else VARIANT_KEYS | {"target"}
    unknown = set(item) - allowed
    if unknown:
        raise SpecError(f"{where} has unknown keys {sorted(unknown)}")
    if "recipe" not in item or "ekv" not in item:
        raise SpecError(f"{where} needs at least 'recipe' and 'ekv'")
    fields = {"prefill_lengths": prefill_lengths, **item}
    if target is not None:
        fields["target"] = target
    return make_variant(**fields)


def load_bundle_set(path: Path | None = None) -> tuple[str, list[VariantSpec]]:
    path = Path(path) if path else DEFAULTS_FILE
    data = read_toml(path)
    variants = [
        variant_from_table(item, f"{path}: variant {index + 1}") for index, item in enumerate(data.get("variant", []))
    ]
    if not variants:
        raise SpecError(f"{path} lists no [[variant]] tables")
    return data.get("checkpoint", "embedded:gemma3-270m"), variants
