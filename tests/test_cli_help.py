"""`abr ... --help`: every command has a description, every option help text that names
its default, and the flags have one spelling across commands (old spellings still parse).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from abrstack.cli import build_parser

# Options whose help is owned by a module this test must not rewrite (player_sim/play_cli.py
# is being changed on another branch); skipped, not required to stay gaps.
KNOWN_GAPS: set[tuple[str, str]] = set()


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse._SubParsersAction]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield action


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
          ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command path, subparser, its one-line help in the parent's list), depth first."""
    for group in _subparsers(parser):
        helps = {a.dest: a.help for a in group._choices_actions}
        for name, sub in group.choices.items():
            yield path + (name,), sub, helps.get(name)
            yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(build_parser()))
IDS = [" ".join(p) for p, _, _ in COMMANDS]


def _options(sub: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in sub._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                               argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:  # hidden aliases and refused old flags
            continue
        yield action


def _name(action: argparse.Action) -> str:
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p, _, _ in COMMANDS}
    assert {"sample", "encode", "encoder", "encoder serve", "origin", "edge", "sim", "abr-list",
            "play", "demo"} <= names


@pytest.mark.parametrize(("path", "sub", "line"), COMMANDS, ids=IDS)
def test_every_command_has_a_description_and_a_summary_line(path, sub, line):
    assert sub.description and len(sub.description.split()) >= 5, f"abr {' '.join(path)}: no description"
    assert line, f"abr {' '.join(path)}: no help line in the parent's command list"


@pytest.mark.parametrize(("path", "sub", "line"), COMMANDS, ids=IDS)
def test_every_option_has_help_naming_its_default(path, sub, line):
    missing, no_default = [], []
    for action in _options(sub):
        name = _name(action)
        if (path[-1], name) in KNOWN_GAPS:
            continue
        if not (action.help or "").strip():
            missing.append(name)
            continue
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            continue
        if "default" not in action.help.lower():
            no_default.append(name)
    assert not missing, f"abr {' '.join(path)}: options without help: {missing}"
    assert not no_default, f"abr {' '.join(path)}: help does not give the default: {no_default}"


@pytest.mark.parametrize(("path", "sub", "line"), COMMANDS, ids=IDS)
def test_help_renders(path, sub, line, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: abr " + " ".join(path))
    for old in ("--traces", "--protocols", "--plots"):
        assert old not in out, f"abr {' '.join(path)} --help still shows {old}"


def test_segment_s_help_gives_unit_and_range():
    (encode,) = [sub for p, sub, _ in COMMANDS if p == ("encode",)]
    (action,) = [a for a in encode._actions if "--segment-s" in a.option_strings]
    assert action.help is not None
    assert re.search(r"\b1\s*(to|-|–)\s*30\b", action.help), action.help
    assert re.search(r"\bseconds?\b|\b30 s\b", action.help), action.help


# One spelling across commands: the canonical flag, and the old one kept as a hidden alias.
@pytest.mark.parametrize(("new", "old", "dest", "expected"), [
    (["sim", "--trace", "a", "b"], ["sim", "--traces", "a", "b"], "trace", ["a", "b"]),
    (["sim", "--out", "plots"], ["sim", "--plots", "plots"], "out", Path("plots")),
    (["demo", "--protocol", "h1,h3"], ["demo", "--protocols", "h1,h3"], "protocol", "h1,h3"),
])
def test_canonical_flags_and_their_old_spellings_parse_to_the_same_dest(new, old, dest, expected):
    parser = build_parser()
    assert getattr(parser.parse_args(new), dest) == expected
    assert getattr(parser.parse_args(old), dest) == expected


def test_canonical_defaults_are_kept_when_no_flag_is_given():
    parser = build_parser()
    sim = parser.parse_args(["sim"])
    assert sim.trace is None and sim.out is None
    assert parser.parse_args(["demo"]).protocol == "h1,h2,h3"


def test_a_command_whose_package_is_absent_is_skipped_not_fatal():
    """A stale editable install (made before a package was added) still runs the other commands."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Absent:\n"  # the package is not installed: its import fails as Python's does
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'qoe':\n"
            "            raise ModuleNotFoundError(\"No module named 'qoe'\", name='qoe')\n"
            "sys.meta_path.insert(0, Absent())\n"
            "from abrstack.cli import main; sys.exit(main(['--help']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "play" in p.stdout and "qoe" not in p.stdout.split("COMMAND", 2)[-1].split("options")[0]
