"""The typed spec of one build variant: the single definition the CLI flags, the TOML matrix and the tests produce.

Closed choices are enums so a typo fails at parse time with the list of valid values, not half way into
a 6-minute export.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from sdk_build.artifacts.file_names import plain_name_problem
from sdk_build.errors import SpecError

DEFAULT_PREFILL_LENGTHS: tuple[int, ...] = (32, 128, 512, 1280)
"""Google's litert-community/Gemma3-1B-IT files carry prefill signatures of 32, 128, 512 and 1280 tokens."""


class Recipe(str, enum.Enum):
    """Weight quantization recipes. See README "Recipes" for exactly what each one does."""

    FP32 = "fp32"
    DYNAMIC_INT8 = "dynamic_int8"
    DYNAMIC_INT4_BLOCK32 = "dynamic_int4_block32"
    DYNAMIC_INT4_BLOCK128 = "dynamic_int4_block128"
    DYNAMIC_INT4_BLOCK32_ALL = "dynamic_int4_block32_all"
    DYNAMIC_INT4_BLOCK128_ALL = "dynamic_int4_block128_all"
    INT4_QAT = "int4_qat"
    # int4 transformer weights by ai-edge-quantizer's other algorithms, the embedding int8 (issue 21; README "Recipes")
    DYNAMIC_INT4_CHANNEL = "dynamic_int4_channel"
    DYNAMIC_INT4_CHANNEL_OCTAV = "dynamic_int4_channel_octav"
    DYNAMIC_INT4_CHANNEL_MSE = "dynamic_int4_channel_mse"
    DYNAMIC_INT4_CHANNEL_HADAMARD = "dynamic_int4_channel_hadamard"
    DYNAMIC_INT4_CHANNEL_GPTQ = "dynamic_int4_channel_gptq"
    DYNAMIC_INT4_CHANNEL_OSCAR = "dynamic_int4_channel_oscar"
    DYNAMIC_INT4_BLOCK32_OCTAV = "dynamic_int4_block32_octav"
    DYNAMIC_INT4_BLOCK32_GPTQ = "dynamic_int4_block32_gptq"
    DYNAMIC_INT4_BLOCK32_OSCAR = "dynamic_int4_block32_oscar"
    # GPTQ int4 with the most error-sensitive projections at int8 (llama.cpp's Q4_K_M keeps part of them at 6 bits)
    DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8 = "dynamic_int4_block32_gptq_down8"
    DYNAMIC_INT4_CHANNEL_GPTQ_DOWN8 = "dynamic_int4_channel_gptq_down8"
    DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8 = "dynamic_int4_block32_gptq_attn8"
    # the same with the tied embedding / LM head at int4 blocks of 32 by OCTAV: the largest matrix of the 270M (and
    # a third of the 1B) at about half the bytes (README "Recipes": smaller files, not faster ones)
    DYNAMIC_INT4_BLOCK32_GPTQ_EMB4 = "dynamic_int4_block32_gptq_emb4"
    DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8_EMB4 = "dynamic_int4_block32_gptq_down8_emb4"
    DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8_EMB4 = "dynamic_int4_block32_gptq_attn8_emb4"

    @property
    def file_tag(self) -> str:
        """The quantization part of Google's litert-community file names (`..._q4_block128_ekv1280.task`)."""
        return _FILE_TAGS[self]

    @property
    def calibrated(self) -> bool:
        """Needs activation statistics from calibration text (`sdk_build.convert.calibration`)."""
        return self.algorithm in ("gptq", "oscar")

    @property
    def algorithm(self) -> str | None:
        """The ai-edge-quantizer algorithm of an algorithm recipe's int4 weights (README "Recipes"), else None."""
        for name in ("octav", "mse", "hadamard", "gptq", "oscar"):
            if f"_{name}" in self.value:
                return name
        return None

    @property
    def int8_projections(self) -> tuple[str, ...]:
        """The transformer projections a mixed recipe keeps at int8: "down" (the FFN's down projection), "attention"
        (q/k/v and output); empty for the others."""
        parts = self.value.split("_")
        return ("down", "attention") if "attn8" in parts else ("down",) if "down8" in parts else ()

    @property
    def octav_embedding(self) -> bool:
        """The tied embedding / LM head is int4 blocks of 32 by OCTAV (`_emb4`) rather than int8 per-channel."""
        return self.value.endswith("_emb4")

    @property
    def int4(self) -> bool:
        return "int4" in self.value


_FILE_TAGS = {
    Recipe.FP32: "f32",
    Recipe.DYNAMIC_INT8: "q8",
    Recipe.DYNAMIC_INT4_BLOCK32: "q4_block32",
    Recipe.DYNAMIC_INT4_BLOCK128: "q4_block128",
    Recipe.DYNAMIC_INT4_BLOCK32_ALL: "q4_block32_all",
    Recipe.DYNAMIC_INT4_BLOCK128_ALL: "q4_block128_all",
    Recipe.INT4_QAT: "q4_qat",
    Recipe.DYNAMIC_INT4_CHANNEL: "q4_channel",
    Recipe.DYNAMIC_INT4_CHANNEL_OCTAV: "q4_channel_octav",
    Recipe.DYNAMIC_INT4_CHANNEL_MSE: "q4_channel_mse",
    Recipe.DYNAMIC_INT4_CHANNEL_HADAMARD: "q4_channel_hadamard",
    Recipe.DYNAMIC_INT4_CHANNEL_GPTQ: "q4_channel_gptq",
    Recipe.DYNAMIC_INT4_CHANNEL_OSCAR: "q4_channel_oscar",
    Recipe.DYNAMIC_INT4_BLOCK32_OCTAV: "q4_block32_octav",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ: "q4_block32_gptq",
    Recipe.DYNAMIC_INT4_BLOCK32_OSCAR: "q4_block32_oscar",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8: "q4_block32_gptq_down8",
    Recipe.DYNAMIC_INT4_CHANNEL_GPTQ_DOWN8: "q4_channel_gptq_down8",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8: "q4_block32_gptq_attn8",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_EMB4: "q4_block32_gptq_emb4",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8_EMB4: "q4_block32_gptq_down8_emb4",
    Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_ATTN8_EMB4: "q4_block32_gptq_attn8_emb4",
}


class Target(str, enum.Enum):
    ANDROID_CPU = "android-cpu"
    ANDROID_GPU = "android-gpu"
    IOS = "ios"
    WEB_GPU = "web-gpu"

    @property
    def gpu(self) -> bool:
        """Bundles for this target run on a GPU engine (LiteRT-LM's GPU backend, MediaPipe's web runtime)."""
        return self in (Target.ANDROID_GPU, Target.WEB_GPU)

    @property
    def default_gpu_buffer_limit(self) -> int | None:
        """The largest single GPU buffer a bundle for this target may need: WebGPU's default storage-buffer
        binding limit (128 MiB) for GPU targets, which phone browsers and lavapipe report; none for CPU targets."""
        return 128 * 2**20 if self.gpu else None


class BundleFormat(str, enum.Enum):
    TASK = "task"
    LITERTLM = "litertlm"

    @property
    def suffix(self) -> str:
        return "." + self.value


def parse_enum(kind: type[enum.Enum], value: str, what: str) -> enum.Enum:
    """Parse a closed choice, naming the valid values when the input is not one of them."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)  # type: ignore[attr-defined]
        raise SpecError(f"unknown {what} {value!r}; choose one of: {choices}") from None


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One bundle to build: how to quantize, how big a KV cache, which prefill signatures, which file format."""

    recipe: Recipe
    ekv: int
    prefill_lengths: tuple[int, ...] = DEFAULT_PREFILL_LENGTHS
    formats: tuple[BundleFormat, ...] = (BundleFormat.TASK,)
    target: Target = Target.ANDROID_CPU
    output_name: str | None = None
    """File stem; None means Google's litert-community naming (see `sdk_build.artifacts.naming`)."""
    gpu_buffer_limit: int | None = None
    """Bytes every weight tensor must fit as one GPU buffer; None: the target's default
    (`Target.default_gpu_buffer_limit`), 0: no limit. Decides the GPU layout (`sdk_build.gpu.layout`)."""

    def __post_init__(self) -> None:
        if self.ekv <= 0:
            raise SpecError(f"ekv must be a positive number of tokens, got {self.ekv}")
        if not self.prefill_lengths:
            raise SpecError("at least one prefill length is needed")
        if any(length <= 0 for length in self.prefill_lengths):
            raise SpecError(f"prefill lengths must be positive, got {list(self.prefill_lengths)}")
        if len(set(self.prefill_lengths)) != len(self.prefill_lengths):
            raise SpecError(f"prefill lengths must differ (each is one signature), got {list(self.prefill_lengths)}")
        if self.output_name is not None and (problem := plain_name_problem(self.output_name)):
            raise SpecError(f"output name {self.output_name!r} {problem}; it must be a plain file name (no folders)")
        largest = max(self.prefill_lengths)
        if self.ekv < largest:
            raise SpecError(
                f"ekv {self.ekv} is smaller than the largest prefill length {largest}: the KV cache must hold a "
                f"whole prefill; raise --ekv to at least {largest} or drop that prefill length"
            )
        if not self.formats:
            raise SpecError("at least one bundle format is needed")
        if self.gpu_buffer_limit is not None and self.gpu_buffer_limit < 0:
            raise SpecError(f"the GPU buffer limit must be a positive number of bytes (or 0: none), got {self.gpu_buffer_limit}")

    @property
    def buffer_limit(self) -> int | None:
        """The GPU buffer limit in force: the explicit one, else the target's default; None when there is none."""
        limit = self.gpu_buffer_limit if self.gpu_buffer_limit is not None else self.target.default_gpu_buffer_limit
        return limit or None

    @property
    def export_key(self) -> tuple[int, tuple[int, ...], int | None, bool]:
        """Variants sharing this key share one float export: quantization happens after it. The GPU buffer limit
        and GPU-ness are part of it because the GPU layout and F16 safety change the exported model."""
        return (self.ekv, tuple(sorted(self.prefill_lengths)), self.buffer_limit, self.target.gpu)

    def to_dict(self) -> dict[str, object]:
        return {
            "recipe": self.recipe.value,
            "ekv": self.ekv,
            "prefill_lengths": list(self.prefill_lengths),
            "formats": [fmt.value for fmt in self.formats],
            "target": self.target.value,
            "output_name": self.output_name,
            **({"gpu_buffer_limit": self.buffer_limit} if self.buffer_limit else {}),
        }


def default_prefill_lengths(ekv: int) -> tuple[int, ...]:
    """The default signatures that fit a KV cache of `ekv` tokens: `--ekv 1024` alone must build, not fail on the
    1280-token signature it did not ask for."""
    return tuple(n for n in DEFAULT_PREFILL_LENGTHS if n <= int(ekv)) or (min(DEFAULT_PREFILL_LENGTHS[0], int(ekv)),)


DEFAULT_INT4 = "int4"
"""Recipe alias (CLI `--recipe int4`, TOML `recipe = "int4"`): the default int4 recipe of the variant's target."""

_DEFAULT_INT4 = {
    # GPTQ blocks of 32 with every FFN down projection at int8: on the real 270M, held-out perplexity +20% over fp32
    # against +31% for plain GPTQ and +60% for min-max, top-1 82.0% against 79.7% and 75.8%, the same decode speed,
    # faster prefill, 4% more bytes (bench.int4_recipes; the table: docs/benchmarks.md, "int4 recipes vs llama.cpp")
    Target.ANDROID_CPU: Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8,
    Target.IOS: Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8,
    # int4 blocks of 32 and int8 per-channel matrices, both of which the GPU engine runs, in F16 and F32
    # (tests/test_gpu_engine.py); on a real GPU the real 270M keeps the lead it has on the CPU over min-max
    # (docs/benchmarks.md, "The default int4 on a real GPU")
    Target.ANDROID_GPU: Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8,
    Target.WEB_GPU: Recipe.DYNAMIC_INT4_BLOCK32_GPTQ_DOWN8,
}


def default_int4(target: Target) -> Recipe:
    """The int4 recipe a target gets for `int4`, chosen by measurement: README "Recipes" says which and why (the
    table: README "Side by side"). The recipes of Google's published files stay available by their own names."""
    return _DEFAULT_INT4[target]


def make_variant(
    recipe: str,
    ekv: int,
    prefill_lengths: Sequence[int] | None = None,
    formats: Sequence[str] = ("task",),
    target: str = "android-cpu",
    output_name: str | None = None,
    gpu_buffer_limit: int | None = None,
) -> VariantSpec:
    """Build a VariantSpec from plain strings (CLI flags, TOML), with clear errors for bad values. `int4` is the
    target's default int4 recipe (`default_int4`)."""
    chosen_target: Target = parse_enum(Target, target, "target")  # type: ignore[assignment]
    return VariantSpec(
        recipe=default_int4(chosen_target) if recipe == DEFAULT_INT4 else parse_enum(Recipe, recipe, "recipe"),  # type: ignore[arg-type]
        ekv=int(ekv),
        prefill_lengths=tuple(int(n) for n in prefill_lengths) if prefill_lengths else default_prefill_lengths(ekv),
        formats=tuple(parse_enum(BundleFormat, f, "format") for f in formats),  # type: ignore[misc]
        target=chosen_target,
        output_name=output_name,
        gpu_buffer_limit=gpu_buffer_limit,
    )
