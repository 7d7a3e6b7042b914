"""A bundle met without its manifest (a phone's download folder) is named by its file: the recipe the name states
must be a Recipe the lab's baselines use, or no published figure can ever match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from android_bridge.bundle_info import bundle_info
from device_tests.baselines import load_baselines
from sdk_build.naming import recipe_from_file_name
from sdk_build.spec import Recipe

RECIPES = {r.value for r in Recipe}
PUBLISHED_FILES = sorted({b.file: b.quantization for b in load_baselines().baselines if b.file}.items())
# Google's -web.task files come from its internal GPU converter: their baselines say so (`dynamic_int8_web`) and
# no recipe of ours claims them.
NAMED_BY_RECIPE = [(f, q) for f, q in PUBLISHED_FILES if q in RECIPES]


@pytest.mark.parametrize(("file_name", "quantization"), NAMED_BY_RECIPE)
def test_published_file_names_give_the_baselines_recipe(tmp_path: Path, file_name: str, quantization: str):
    bundle = tmp_path / file_name
    bundle.write_bytes(b"not a manifest-listed bundle")
    info = bundle_info(bundle)
    assert info.quantization == quantization
    assert Recipe(info.quantization)


@pytest.mark.parametrize("recipe", list(Recipe))
def test_our_file_tags_name_their_recipe(recipe: Recipe):
    assert recipe_from_file_name(f"Gemma3-1B-IT_multi-prefill-seq_{recipe.file_tag}_ekv1280_gpu.task") is recipe


def test_a_name_without_a_tag_says_unknown(tmp_path: Path):
    bundle = tmp_path / "my-model.task"
    bundle.write_bytes(b"x")
    assert bundle_info(bundle).quantization == "unknown"


def test_google_web_files_claim_no_recipe_of_ours():
    web = [f for f, q in PUBLISHED_FILES if q not in RECIPES]
    assert web and all(recipe_from_file_name(f) is None for f in web)
