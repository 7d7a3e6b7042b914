"""Variant spec validation and the naming of Google's litert-community/Gemma3-1B-IT files: pure logic, no conversion."""

from __future__ import annotations

import pytest

from sdk_build.architecture import GEMMA3_1B
from sdk_build.artifacts.naming import bundle_filename
from sdk_build.errors import SpecError
from sdk_build.sources.checkpoint import Checkpoint
from sdk_build.spec import BundleFormat, Recipe, make_variant


def _checkpoint(it: bool = True) -> Checkpoint:
    from pathlib import Path

    return Checkpoint(ref="random:gemma3-1b", directory=Path("."), model="gemma3-1b", shape=GEMMA3_1B,
                      instruction_tuned=it, qat=False, fingerprint="x")


@pytest.mark.parametrize(
    ("recipe", "ekv", "expected"),
    [
        ("dynamic_int8", 1280, "Gemma3-1B-IT_multi-prefill-seq_q8_ekv1280.task"),
        ("dynamic_int4_block128", 4096, "Gemma3-1B-IT_multi-prefill-seq_q4_block128_ekv4096.task"),
        ("dynamic_int4_block32", 1280, "Gemma3-1B-IT_multi-prefill-seq_q4_block32_ekv1280.task"),
        ("fp32", 1280, "Gemma3-1B-IT_multi-prefill-seq_f32_ekv1280.task"),
    ],
)
def test_names_follow_googles_files(recipe: str, ekv: int, expected: str) -> None:
    assert bundle_filename(_checkpoint(), make_variant(recipe, ekv), BundleFormat.TASK) == expected


def test_single_prefill_and_litertlm_names() -> None:
    variant = make_variant("dynamic_int8", 512, [128], formats=["litertlm"])
    assert bundle_filename(_checkpoint(it=False), variant, BundleFormat.LITERTLM) == (
        "Gemma3-1B_prefill-seq128_q8_ekv512.litertlm"
    )


def test_default_prefill_lengths_are_googles() -> None:
    assert make_variant("dynamic_int8", 1280).prefill_lengths == (32, 128, 512, 1280)


def test_ekv_smaller_than_largest_prefill_is_refused() -> None:
    with pytest.raises(SpecError, match="ekv 1024 is smaller than the largest prefill length 1280"):
        make_variant("dynamic_int8", 1024, [32, 1280])


def test_unknown_recipe_lists_the_choices() -> None:
    with pytest.raises(SpecError, match="unknown recipe 'int3'.*dynamic_int8"):
        make_variant("int3", 1024, [32])


def test_all_recipes_have_file_tags() -> None:
    assert len({r.file_tag for r in Recipe}) == len(Recipe)


def test_the_first_command_a_user_types_is_a_valid_variant():
    """`sdk-build build --recipe dynamic_int8 --ekv 1024`: the default prefill set must fit the KV cache asked for."""
    assert make_variant("dynamic_int8", 1024).prefill_lengths == (32, 128, 512)
    assert make_variant("dynamic_int8", 4096).prefill_lengths == (32, 128, 512, 1280)


def test_int4_alias_is_the_targets_default_recipe() -> None:
    from sdk_build.spec import DEFAULT_INT4, Target, default_int4

    for target in Target:
        variant = make_variant(DEFAULT_INT4, 1024, [32], target=target.value)
        assert variant.recipe is default_int4(target) and variant.recipe.int4
    # the published files' recipes stay available by their own names
    assert make_variant("dynamic_int4_block32", 1024, [32]).recipe is Recipe.DYNAMIC_INT4_BLOCK32
    assert make_variant("dynamic_int4_block128", 1024, [32]).recipe is Recipe.DYNAMIC_INT4_BLOCK128
