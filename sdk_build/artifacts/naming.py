"""Output names in the scheme of Google's litert-community/Gemma3-1B-IT files: `Gemma3-1B-IT_multi-prefill-seq_q4_block128_ekv1280.task`."""

from __future__ import annotations

import re

from sdk_build.artifacts.file_names import plain_name_problem
from sdk_build.errors import SpecError
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import BundleFormat, Recipe, VariantSpec

PUBLISHED_NAMES = {r"[_-]q4_ekv\d": Recipe.INT4_QAT, r"-int4\.(task|litertlm)$": Recipe.INT4_QAT,
                   r"-int8\.(task|litertlm)$": Recipe.DYNAMIC_INT8}
"""Google's own file names that ours spell differently: litert-community's `..._q4_ekv4096` and
`gemma3-1b-it-int4.task` are 4-bit per-channel (QAT), which is what `int4_qat` stores. Its `-web.task` files come
from an internal GPU converter and state no recipe of ours."""


def bundle_stem(checkpoint: Checkpoint, variant: VariantSpec) -> str:
    if variant.output_name:
        return variant.output_name
    prefill = (
        "multi-prefill-seq" if len(variant.prefill_lengths) > 1 else f"prefill-seq{variant.prefill_lengths[0]}"
    )
    # GPU targets carry the GPU layout (sdk_build.gpu.layout), so their files differ from the CPU ones
    suffix = {"web-gpu": "_web", "android-gpu": "_gpu"}.get(variant.target.value, "")
    return f"{checkpoint.display_name}_{prefill}_{variant.recipe.file_tag}_ekv{variant.ekv}{suffix}"


def bundle_filename(checkpoint: Checkpoint, variant: VariantSpec, fmt: BundleFormat) -> str:
    """The output file name; whatever its parts came from (a flag, a matrix file, an adapter folder), it is a plain
    file name inside the output folder or a SpecError."""
    name = bundle_stem(checkpoint, variant) + fmt.suffix
    problem = plain_name_problem(name)
    if problem:
        raise SpecError(f"the output file name {name!r} {problem}; choose another --name")
    return name


def recipe_from_file_name(name: str) -> Recipe | None:
    """The recipe a bundle's file name states, in our scheme or Google's (`..._q4_block128_ekv1280.task`), for
    bundles met without their manifest; None when the name states none. The longest matching tag wins."""
    tags = {recipe.file_tag: recipe for recipe in Recipe}
    for tag in sorted(tags, key=len, reverse=True):
        if re.search(rf"[_-]{re.escape(tag)}_", name):
            return tags[tag]
    return next((recipe for pattern, recipe in PUBLISHED_NAMES.items() if re.search(pattern, name)), None)
