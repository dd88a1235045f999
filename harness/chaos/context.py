"""The run context: one object owning a run's platform, undo registry, recorder, session and game-day walk."""

# `harness run` installs one with a single `with run_context(platform=..., session=...)` block around
# Chaos Toolkit, and a game day wraps that in `with run_context(walk=...)`; every action, probe and
# control reads what it needs from `current()`. A context installed by `run_context` is derived from
# the one around it (so the run inherits the game day's walk) and the previous one comes back when
# the block ends, also on an exception or Ctrl-C. Under plain `chaos run` nothing installs one: the
# process-wide default context serves, its platform from HARNESS_PLATFORM on first use.
#
# Chaos Toolkit runs actions in threads (background activities, the abort watcher), so the current
# context is process-wide, not a contextvar, and changed under a lock. A process runs one experiment
# at a time: a context derived with run_context shares the undo registry and the recorder of the one
# around it (the process default's, unless a caller passes its own, as a test of a killed run does).

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness import environment
from harness.chaos.record import Recorder
from harness.chaos.undo import UndoRegistry
from harness.platforms import DEFAULT_PLATFORM, get_platform
from harness.platforms.base import Platform

__all__ = ["RunContext", "current", "current_platform", "run_context", "use_platform"]


@dataclass
class RunContext:
    """What one run shares between the harness, Chaos Toolkit's activities and the controls."""

    platform: Platform | None = None  # None: from HARNESS_PLATFORM on first use (plain `chaos run`)
    undo: UndoRegistry = field(default_factory=UndoRegistry)  # every fault registers its undo here first
    recorder: Recorder = field(default_factory=Recorder)  # what chaos did and when, for the journal
    session: Any = None  # harness.run.session.HarnessRun while a run is on (run/ is a higher layer)
    walk: Any = None  # harness.suite.walk.Walk during a game day (suite/ is a higher layer)


_lock = threading.RLock()
_current = RunContext()


def current() -> RunContext:
    """The installed context (the process default when none is)."""
    with _lock:
        return _current


@contextmanager
def run_context(**fields: Any) -> Iterator[RunContext]:
    """Install a context derived from the current one with `fields` replaced, for the block's duration."""
    global _current
    with _lock:
        previous = _current
        _current = dataclasses.replace(previous, **fields)
        installed = _current
    try:
        yield installed
    finally:
        with _lock:
            _current = previous


def current_platform() -> Platform:
    """The context's platform; under plain `chaos run`, the one HARNESS_PLATFORM names (default local)."""
    with _lock:
        context = _current
        if context.platform is None:
            context.platform = get_platform(environment.get("HARNESS_PLATFORM") or DEFAULT_PLATFORM)
        return context.platform


def use_platform(platform: Platform | None) -> None:
    """Set the current context's platform (plain `chaos run` and tests; `harness run` uses run_context)."""
    with _lock:
        _current.platform = platform
