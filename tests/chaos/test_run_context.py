"""Specifications of the run context: one object owns a run's platform, undo registry, recorder, session and walk."""

from __future__ import annotations

import threading

import pytest

from harness.chaos.context import RunContext, current, current_platform, run_context
from harness.platforms.fake import FakePlatform
from harness.run import control
from harness.suite import gameday_control


def test_a_with_block_installs_the_context_and_the_previous_one_comes_back() -> None:
    before = current()
    platform = FakePlatform(pods=[], declared=[])

    with run_context(platform=platform, session="the session") as installed:
        assert current() is installed
        assert current_platform() is platform and control.session() == "the session"
        assert installed.undo is before.undo and installed.recorder is before.recorder  # shared

    assert current() is before and control.session() is before.session


def test_the_previous_context_comes_back_after_an_exception_or_ctrl_c() -> None:
    before = current()
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), run_context(session="doomed"):
            raise error
        assert current() is before


def test_a_run_inside_a_game_day_inherits_its_walk_and_the_walk_goes_with_the_game_day() -> None:
    walk = object()
    with run_context(walk=walk):
        with run_context(platform=FakePlatform(pods=[], declared=[]), session="run"):
            assert gameday_control.current() is walk  # what the gameday control reads during the run
        assert gameday_control.current() is walk
    assert gameday_control.current() is None


def test_actions_in_another_thread_see_the_installed_context() -> None:
    """Chaos Toolkit runs background activities in threads: the context is process-wide, not per thread."""
    platform = FakePlatform(pods=[], declared=[])
    seen: list[object] = []
    with run_context(platform=platform):
        worker = threading.Thread(target=lambda: seen.append(current_platform()))
        worker.start()
        worker.join(timeout=10)
    assert seen == [platform]


def test_a_context_is_a_plain_object_a_test_can_build() -> None:
    context = RunContext(platform=FakePlatform(pods=[], declared=[]))
    assert context.session is None and context.walk is None
