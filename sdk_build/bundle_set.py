"""Read a bundle-set TOML (a checkpoint and a list of variants) into typed `VariantSpec`s."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sdk_build.errors import SpecError
from sdk_build.spec import VariantSpec, make_variant

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


def load_bundle_set(path: Path | None = None) -> tuple[str, list[VariantSpec]]:
    path = Path(path) if path else DEFAULTS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from exc
    variants = []
    for index, item in enumerate(data.get("variant", [])):
        unknown = set(item) - {"recipe", "ekv", "prefill_lengths", "formats", "target", "output_name"}
        if unknown:
            raise SpecError(f"{path}: variant {index + 1} has unknown keys {sorted(unknown)}")
        if "recipe" not in item or "ekv" not in item:
            raise SpecError(f"{path}: variant {index + 1} needs at least 'recipe' and 'ekv'")
        variants.append(make_variant(**item))
    if not variants:
        raise SpecError(f"{path} lists no [[variant]] tables")
    return data.get("checkpoint", "embedded:gemma3-270m"), variants
