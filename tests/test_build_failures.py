"""Builds with bad inputs, hostile names, full or read-only disks and killed predecessors (the real CLI and pipeline).

What must hold: every input the export cannot use is refused in seconds, before the export starts (no float
export, no `.export-*` folder in a fresh cache); names that would leave the output folder are refused; a full or
read-only disk, or an output path that is a file, is one line naming the path and the cause; the quantizer's
memory-mapped writes fail with an error, not SIGBUS; work folders of killed builds are removed, those of running
ones kept. Disks are real tmpfs mounts (root; skipped otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fs_support import fill, tmpfs

ROOT = Path(__file__).resolve().parents[1]
PROMPTLY_S = 120.0  # generous: python + torch start-up on a busy 2-core machine; the export alone takes minutes


def cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "sdk_build", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, check=False, env={**os.environ, "GEMMA_EDGE_QUIET": "1"})
    return result, time.monotonic() - started


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("sdk-build: error:"), lines
    assert "Traceback" not in result.stderr
    return lines[0]


def build_args(checkpoint: Path, output: Path, cache: Path, *extra: str) -> list[str]:
    return ["build", "--checkpoint", str(checkpoint), "--allow-custom-shape", "--recipe", "dynamic_int8",
            "--ekv", "128", "--prefill", "32", "--output", str(output), "--cache-dir", str(cache), *extra]


def no_export_started(cache: Path) -> bool:
    exports = cache / "exports"
    return not exports.exists() or not [p for p in exports.iterdir() if p.name != ".owner.lock"]


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# ---- item 5: validated in seconds, before the export ----

BAD_CHECKPOINTS = {
    "garbage tokenizer": (lambda d: (d / "tokenizer.model").write_bytes(b"not a sentencepiece model"),
                          "is not a SentencePiece model"),
    "vocab_size 0": (lambda d: edit_config(d, vocab_size=0), "vocab_size is 0"),
    "zero layers": (lambda d: edit_config(d, num_hidden_layers=0, layer_types=[]), "num_hidden_layers is 0"),
    "vocab_size not a number": (lambda d: edit_config(d, vocab_size="abc"), "not a whole number"),
    "heads not a multiple of kv heads": (lambda d: edit_config(d, num_attention_heads=3, num_key_value_heads=2),
                                         "not a multiple"),
    "weights of another shape": (lambda d: edit_config(d, intermediate_size=256), "has shape"),
    "tokenizer larger than the embedding": (lambda d: edit_config(d, vocab_size=8), "tokens but config.json"),
    "config not an object": (lambda d: (d / "config.json").write_text("[1, 2]"), "not a config object"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_bad_checkpoints_are_refused_before_the_export(tiny_checkpoint_dir: Path, tmp_path: Path, case: str) -> None:
    damage, expected = BAD_CHECKPOINTS[case]
    checkpoint = shutil.copytree(tiny_checkpoint_dir, tmp_path / "checkpoint")
    damage(checkpoint)
    result, seconds = cli(*build_args(checkpoint, tmp_path / "out", tmp_path / "cache"))
    assert expected in one_line(result)
    assert seconds < PROMPTLY_S and no_export_started(tmp_path / "cache")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--prefill", "32"], "prefill lengths must differ"),  # with build_args' own --prefill 32
        (["--ekv", "1000000"], "exceeds the model's context"),
    ],
)
def test_bad_variants_are_refused_before_the_export(
    tiny_checkpoint_dir: Path, tmp_path: Path, flags: list[str], expected: str
) -> None:
    result, seconds = cli(*build_args(tiny_checkpoint_dir, tmp_path / "out", tmp_path / "cache", *flags))
    assert expected in one_line(result)
    assert seconds < PROMPTLY_S and no_export_started(tmp_path / "cache")


# ---- item 7: names from outside stay plain file names inside the output folder ----


@pytest.mark.parametrize("name", ["../escape", "sub/dir", ".hidden", "a\x1b[2Jb", "tab\there", "x" * 300])
def test_an_output_name_must_be_a_plain_file_name(tiny_checkpoint_dir: Path, tmp_path: Path, name: str) -> None:
    result, _ = cli(*build_args(tiny_checkpoint_dir, tmp_path / "out", tmp_path / "cache", "--name", name))
    line = one_line(result)
    assert "plain file name" in line and "\x1b" not in line
    assert not list(tmp_path.glob("escape*")) and no_export_started(tmp_path / "cache")


# ---- item 3: disks and folders ----


def test_an_output_path_that_is_a_file_is_one_line(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    result, _ = cli(*build_args(tiny_checkpoint_dir, tmp_path / "out", tmp_path / "cache"))
    assert "--output" in (line := one_line(result)) and "is a file" in line


def test_a_read_only_output_folder_is_one_line(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as out:
        result, _ = cli(*build_args(tiny_checkpoint_dir, out, tmp_path / "cache"))
    assert "read-only" in one_line(result)


@pytest.mark.parametrize("where", ["output", "cache"])
def test_a_nearly_full_disk_is_refused_before_the_export(tiny_checkpoint_dir: Path, tmp_path: Path, where: str) -> None:
    with tmpfs(tmp_path / "small", "2m") as small:
        out, cache = (small, tmp_path / "cache") if where == "output" else (tmp_path / "out", small)
        result, seconds = cli(*build_args(tiny_checkpoint_dir, out, cache))
        line = one_line(result)
        assert "not enough disk space" in line and str(small) in line
        assert seconds < PROMPTLY_S and no_export_started(cache)


def test_a_disk_full_while_writing_is_one_line_naming_the_path(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "1m") as full:
        fill(full)
        result, _ = cli("catalog", "--bundles", str(tiny_bundle_dir), "--output", str(full / "catalog.json"))
    line = one_line(result)
    assert "No space left on device" in line and str(full / "catalog.json") in line


QUANTIZE_ONTO = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sdk_build.errors import find_os_error, os_error_message
    from sdk_build.convert.quantize import quantize_tflite
    from sdk_build.spec import Recipe
    try:
        quantize_tflite(Path(sys.argv[1]), Recipe.DYNAMIC_INT8, Path(sys.argv[2]))
    except Exception as exc:
        found = find_os_error(exc)
        print("ERROR", os_error_message(found) if found else repr(exc))
        sys.exit(3)
""")


def test_the_quantizer_on_a_full_disk_fails_with_an_error_not_sigbus(
    tiny_bundle_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    """ai-edge-quantizer writes through mmap: on a sparse file that the disk cannot back, that was SIGBUS."""
    float_model = next((gemma_edge_cache / "exports").glob("*_f32.tflite"))
    with tmpfs(tmp_path / "tiny", "64k") as tiny:
        result = subprocess.run([sys.executable, "-c", QUANTIZE_ONTO, str(float_model), str(tiny / "q.tflite")],
                                cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        left = [p.name for p in tiny.iterdir()]
    assert result.returncode != -signal.SIGBUS, "killed by SIGBUS"
    assert result.returncode == 3 and "No space left on device" in result.stdout, result.stdout + result.stderr
    assert left == []  # the temporary file was removed


HOLD_WORK_FOLDER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from sdk_build.system.leftovers import work_dir
    with work_dir(Path(sys.argv[1]), sys.argv[2]) as folder:
        (folder / "big.tflite").write_bytes(b"x" * 100_000)
        print(folder, flush=True)
        if sys.argv[3] == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)
""")


def hold(parent: Path, prefix: str, how: str) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_WORK_FOLDER, str(parent), prefix, how], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    folder = Path(process.stdout.readline().strip())
    if how == "die":
        process.wait(timeout=60)
    return process, folder


def test_work_folders_of_killed_builds_are_removed_and_running_ones_kept(
    tiny_bundle_dir: Path, tiny_checkpoint_dir: Path, gemma_edge_cache: Path, tmp_path: Path
) -> None:
    from conftest import TINY_EKV, TINY_PREFILL

    from sdk_build.pipeline import build
    from sdk_build.spec import make_variant

    out = tmp_path / "out"
    out.mkdir()
    exports = gemma_edge_cache / "exports"
    _, dead_build = hold(out, ".build-", "die")
    _, dead_export = hold(exports, ".export-", "die")
    alive, running = hold(out, ".build-", "live")
    try:
        assert dead_build.is_dir() and dead_export.is_dir() and running.is_dir()
        # A new variant of the cached float export: quantize + bundle only (seconds).
        variant = make_variant("dynamic_int4_block32", TINY_EKV, TINY_PREFILL, formats=["task"])
        build(str(tiny_checkpoint_dir), variant, out, cache_dir=gemma_edge_cache, allow_custom_shape=True)
        assert not dead_build.exists() and not dead_export.exists()
        assert running.is_dir() and (running / "big.tflite").is_file()
    finally:
        alive.kill()
        alive.wait(timeout=30)
