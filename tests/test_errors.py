"""Specifications of harness/errors.py: one ExitCode enum and one wire form for the daemon's errors."""

from __future__ import annotations

import json

import pytest

from harness.errors import (SEVERITY, ConfigError, ExitCode, HarnessError, InconclusiveError, PortInUseError,
                            SloQueryError, verdict_word)


def test_exit_codes_keep_their_documented_values_and_words() -> None:
    assert [(int(c), c.word) for c in ExitCode] == [
        (0, "PASS"), (1, "FAIL"), (2, "ERROR"), (3, "INCONCLUSIVE"), (130, "INTERRUPTED")]
    assert verdict_word(7) == "EXIT 7" and verdict_word(130) == "INTERRUPTED"


def test_severity_is_interrupted_then_invalid_then_inconclusive_then_fail_then_pass() -> None:
    assert [int(c) for c in SEVERITY] == [130, 2, 3, 1, 0]
    assert [c.rank for c in SEVERITY] == sorted((c.rank for c in SEVERITY), reverse=True)


def test_an_undocumented_code_counts_as_invalid_and_no_codes_as_pass() -> None:
    assert ExitCode.of(7) is ExitCode.INVALID
    assert ExitCode.worst([1, 7]) is ExitCode.INVALID
    assert ExitCode.worst([]) is ExitCode.PASS


def test_error_classes_carry_their_exit_code_from_the_enum() -> None:
    assert HarnessError("x").exit_code is ExitCode.INVALID
    assert InconclusiveError("x").exit_code is ExitCode.INCONCLUSIVE


@pytest.mark.parametrize("error", [
    ConfigError("expected a number", file="slos/a.yaml", field="slos[0].objective"),
    PortInUseError(15000, "ingress"),
    SloQueryError("several series"),
    HarnessError("plain"),
], ids=lambda e: type(e).__name__)
def test_an_error_survives_the_wire_with_its_class_message_code_file_and_field(error: HarnessError) -> None:
    wire = json.loads(json.dumps(error.to_wire()))  # what the control socket carries

    rebuilt = HarnessError.from_wire(wire)

    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    assert rebuilt.exit_code == error.exit_code
    assert getattr(rebuilt, "file", None) == getattr(error, "file", None)
    assert getattr(rebuilt, "field", None) == getattr(error, "field", None)


def test_a_wire_error_of_a_foreign_type_comes_back_as_a_harness_error_with_exit_2() -> None:
    rebuilt = HarnessError.from_wire({"type": "KeyError", "message": "'pods'\nTraceback ...", "exit_code": 2})

    assert type(rebuilt) is HarnessError and rebuilt.exit_code is ExitCode.INVALID
    assert str(rebuilt).startswith("'pods'")


def test_an_unreachable_prometheus_exits_inconclusive_and_a_query_error_is_one_kind_of_it() -> None:
    assert InconclusiveError.exit_code == 3 and ConfigError.exit_code == 2
    assert issubclass(SloQueryError, InconclusiveError)
