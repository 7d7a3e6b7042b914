"""The command lines users type: help on every argument, one vocabulary across commands, one entry point.

Every parser is walked: `sdk-build` (and through it `gemma-edge`), the lab, the phone bridge, the server and the
screenshot tool.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from android_bridge.cli import build_parser as android_parser
from device_tests.lab import build_parser as lab_parser
from gemma_edge.cli import COMMANDS
from gemma_edge.cli import main as gemma_edge
from sdk_build.cli import build_parser as sdk_build_parser
from web_demo.__main__ import build_parser as serve_parser
from web_demo.screenshot import build_parser as screenshot_parser

REPO = Path(__file__).resolve().parents[1]

# One name per concept; the older names stay accepted, but only as a second spelling of the same option.
OLDER_NAMES = {"--dest": "--output", "--out": "--output", "--bundle-dir": "--bundles", "--quantization": "--recipe",
               "--targets": "--target"}


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {"sdk-build": sdk_build_parser(), "lab": lab_parser(), "android": android_parser(), "serve": serve_parser(),
            "screenshot": screenshot_parser()}


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_argument_of_every_command_has_help() -> None:
    missing = [f"{path} {action.option_strings or action.dest}" for name, parser in parsers().items()
               for path, action in walk(parser, name) if not action.help]
    assert not missing, f"arguments without help: {missing}"


def test_one_vocabulary_older_names_are_only_aliases() -> None:
    wrong = []
    for name, parser in parsers().items():
        for path, action in walk(parser, name):
            if action.option_strings and action.option_strings[0] in OLDER_NAMES:
                wrong.append(f"{path} {action.option_strings[0]} (call it {OLDER_NAMES[action.option_strings[0]]})")
            if "--json" in action.option_strings and action.nargs != 0:
                wrong.append(f"{path} --json takes a value (--json is a flag; a file is --report PATH)")
    assert not wrong, wrong


def test_older_names_still_parse_to_the_same_option() -> None:
    parser = sdk_build_parser()
    old = parser.parse_args(["pull", "--from", "x", "--dest", "d", "--quantization", "dynamic_int8"])
    new = parser.parse_args(["pull", "--from", "x", "--output", "d", "--recipe", "dynamic_int8"])
    assert (old.output, old.recipe) == (new.output, new.recipe) == (Path("d"), "dynamic_int8")
    both = parser.parse_args(["matrix", "--targets", "ios", "--target", "web-gpu"])
    assert both.targets == ["ios", "web-gpu"]


def test_build_defaults_is_the_demo_plan_with_every_matrix_option() -> None:
    parser = sdk_build_parser()
    defaults, matrix = parser.parse_args(["build-defaults"]), parser.parse_args(["matrix"])
    assert (defaults.matrix, matrix.matrix) == ("demo", "gemma3_1b")
    assert set(vars(defaults)) == set(vars(matrix))  # --jobs, --target, --lora, --verify, ... on both
    assert parser.parse_args(["build-defaults", "--file", "plan.toml"]).matrix == "plan.toml"  # its older name


def test_enum_arguments_offer_their_choices() -> None:
    from sdk_build.spec import Recipe, Target

    parser = sdk_build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "--recipe", "dynamic_int3", "--ekv", "1024"])
    assert parser.parse_args(["build", "--recipe", "int4", "--ekv", "1024"]).recipe == "int4"
    for recipe in Recipe:
        assert parser.parse_args(["build", "--recipe", recipe.value, "--ekv", "1024"]).recipe == recipe.value
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "--recipe", "fp32", "--ekv", "1024", "--target", "android"])
    assert {t.value for t in Target} == set(next(a for a in parser._subparsers._group_actions[0].choices["build"]._actions
                                                  if a.dest == "target").choices)


@pytest.mark.parametrize(("surface", "foreign"), [("host", ["--chromium", "x"]), ("host", ["--serial", "s"]),
                                                  ("web", ["--threads", "4"]), ("gpu", ["--chromium", "x"]),
                                                  ("android", ["--precision", "F16"])])
def test_a_lab_surface_refuses_another_surfaces_flag(surface: str, foreign: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        lab_parser().parse_args([surface, *foreign])
    assert refused.value.code == 2
    assert f"unrecognized arguments: {' '.join(foreign)}" in capsys.readouterr().err


def test_versions() -> None:
    with pytest.raises(SystemExit) as shown:
        sdk_build_parser().parse_args(["--version"])
    assert shown.value.code == 0
    assert gemma_edge(["--version"]) == 0


def test_gemma_edge_runs_each_command_with_that_commands_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert gemma_edge(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in listed
        with pytest.raises(SystemExit) as shown:
            gemma_edge([name, "--help"])
        assert shown.value.code == 0
        assert f"usage: gemma-edge {name}" in capsys.readouterr().out
    assert gemma_edge(["bild"]) == 2
    assert "unknown command 'bild'" in capsys.readouterr().err


def test_gemma_edge_passes_the_exit_status_through(tmp_path: Path) -> None:
    """A real command through the entry point: make-tiny writes its checkpoint; a bad catalog folder exits 2."""
    proc = subprocess.run([sys.executable, "-m", "gemma_edge", "make-tiny", str(tmp_path / "tiny")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tiny" / "config.json").is_file()
    proc = subprocess.run([sys.executable, "-m", "gemma_edge", "catalog", "--bundles", str(tmp_path / "tiny")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "sdk-build: error:" in proc.stderr, proc.stderr


def test_the_lab_has_a_subcommand_for_every_surface_the_session_runs() -> None:
    from device_tests.session import SURFACES

    surfaces = next(a for a in lab_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(surfaces) == {*SURFACES, "judge"}
