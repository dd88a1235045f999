"""Specifications of the CLI's flags: each declares its HARNESS_* variable beside it, and the variable is its default."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness import cli, environment

#: Flags that pick what one invocation does to what, where an environment default would act on the
#: wrong thing unasked: the files to apply, delete instead of apply, kill only the app, accept a
#: failed run as the baseline.
PER_INVOCATION = {"-f", "--filename", "--delete", "--reset", "--app-only", "--force"}


def _options(parser: argparse.ArgumentParser, path: str = "harness") -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}")
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_every_flag_names_its_harness_variable_in_its_help() -> None:
    missing = [f"{path} {'/'.join(a.option_strings)}" for path, a in _options(cli.build_parser())
               if not set(a.option_strings) & PER_INVOCATION and "HARNESS_" not in (a.help or "")]
    assert missing == []


@pytest.mark.parametrize("argv, variable, value, attribute, expected", [
    (["status"], "HARNESS_JSON", "1", "json", True),
    (["gameday", "e.yaml"], "HARNESS_YES", "1", "yes", True),
    (["run", "e.yaml"], "HARNESS_NO_PROGRESS", "1", "no_progress", True),
    (["run", "e.yaml"], "HARNESS_KEEP_UP", "0", "keep_up", False),
    (["suite", "nightly"], "HARNESS_EXPERIMENTS_DIR", "elsewhere", "experiments_dir", Path("elsewhere")),
    (["compare", "r"], "HARNESS_TOLERANCE", "p99=5%", "tolerance", "p99=5%"),
    (["status"], "HARNESS_PLATFORM", "kind", "platform", "kind"),
])
def test_a_flags_variable_is_its_default(argv: list[str], variable: str, value: str, attribute: str, expected: object,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert variable in environment.VARIABLES
    monkeypatch.setenv(variable, value)

    assert getattr(cli.build_parser().parse_args(argv), attribute) == expected


def test_the_flag_given_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_PLATFORM", "kind")

    assert cli.build_parser().parse_args(["status", "--platform", "local"]).platform == "local"
