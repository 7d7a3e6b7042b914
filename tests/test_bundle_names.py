"""A bundle met without its manifest (a phone's download folder) is named by its file: the recipe the name states
must be a Recipe the lab's baselines use, or no published figure can ever match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from android_bridge.bundle_info import bundle_info
from device_tests.baselines import load_baselines
from sdk_build.artifacts.naming import recipe_from_file_name
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


def test_the_bridges_record_converts_to_the_labs_without_losing_a_field():
    """android_bridge returns its own AndroidRun (it must not import the lab); the lab converts it by field name."""
    import dataclasses

    from android_bridge.result import AndroidEnvironment, AndroidRun, AndroidSample
    from device_tests.record import BenchmarkResult, Environment, RunSample

    def names(cls):
        return {f.name for f in dataclasses.fields(cls)}

    assert names(AndroidRun) == names(BenchmarkResult) - {"bundle_bytes"}  # the lab fills bundle_bytes itself
    assert names(AndroidEnvironment) <= names(Environment) and names(AndroidSample) == names(RunSample)
    run = AndroidRun("b.task", "ab" * 32, "dynamic_int8", 1280, 256, 128,
                     AndroidEnvironment("Pixel 8", "Android 14 (SDK 34)", "gpu", "28.0 C", 4, {"runs": [1]}),
                     [AndroidSample(100.0, 20.0, 0.5, 1.5)], 2**30, "ok", "", "gemma3-1b", "task", [32, 128], 1,
                     "2026-12-02T00:00:00Z")
    record = BenchmarkResult.from_dict(run.to_dict())
    assert record.to_dict() | {"bundle_bytes": None} == {**run.to_dict(), "bundle_bytes": None,
                                                         "environment": {**dataclasses.asdict(Environment(
                                                             "android", "Pixel 8", "Android 14 (SDK 34)", "gpu",
                                                             thermal="28.0 C", threads=4, extra={"runs": [1]}))}}
