"""Output names in seed 001's scheme: `Gemma3-1B-IT_multi-prefill-seq_q4_block128_ekv1280.task`."""

from __future__ import annotations

from sdk_build.errors import SpecError
from sdk_build.file_names import plain_name_problem
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import BundleFormat, VariantSpec


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
