"""Same inputs, same bytes: the tiny bundles built twice from empty caches are identical, and say so.

Two builds of the tiny checkpoint with the same spec, each from its own empty cache into its own folder, a few
seconds apart (so any time stamp would differ): the `.task` and `.litertlm` files must have the same sha256, their
manifest entries `reproducible: true`, and the catalog must carry it.
"""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import pytest

from sdk_build.artifacts.catalog import build_catalog
from sdk_build.artifacts.manifest import load_manifest, sha256_file
from sdk_build.pipeline import build
from sdk_build.spec import make_variant
from sdk_build.system.reproducible import build_epoch


@pytest.fixture(scope="module")
def twice(tiny_checkpoint_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    variant = make_variant("dynamic_int8", 128, [32], formats=["task", "litertlm"])
    folders = []
    for run in ("first", "second"):
        root = tmp_path_factory.mktemp(f"reproducible-{run}")
        build(str(tiny_checkpoint_dir), variant, root / "bundles", cache_dir=root / "cache", allow_custom_shape=True)
        folders.append(root / "bundles")
    return folders[0], folders[1]


def test_two_builds_from_empty_caches_give_the_same_bytes(twice: tuple[Path, Path]) -> None:
    first, second = twice
    entries = load_manifest(first).bundles
    assert {e.format for e in entries} == {"task", "litertlm"}
    for entry in entries:
        assert sha256_file(first / entry.file) == sha256_file(second / entry.file) == entry.sha256, entry.file
    assert [e.sha256 for e in entries] == [e.sha256 for e in load_manifest(second).bundles]


def test_the_manifest_and_the_catalog_say_the_build_is_reproducible(twice: tuple[Path, Path]) -> None:
    first, _ = twice
    entries = load_manifest(first).bundles
    assert all(e.reproducible for e in entries)
    assert all(b["source"]["reproducible"] is True for b in build_catalog(entries)["bundles"])


def test_task_members_carry_the_build_epoch_not_the_build_time(twice: tuple[Path, Path]) -> None:
    first, _ = twice
    task = next(e for e in load_manifest(first).bundles if e.format == "task")
    moment = max(build_epoch(), datetime.datetime(1980, 1, 1, tzinfo=datetime.UTC))  # SOURCE_DATE_EPOCH or 1980
    expected = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second // 2 * 2)
    with zipfile.ZipFile(first / task.file) as archive:
        assert {info.date_time for info in archive.infolist()} == {expected}
        assert archive.testzip() is None  # every member's CRC still checks
    assert (first / task.file).read_bytes()[:4] == b"\0\0\0\0"  # the .task layout the runtimes rely on
