"""Every test session keeps its harness state in a folder of its own, never the user's real one.

The default state folder is machine-wide ($XDG_STATE_HOME/mesh-harness, else
~/.local/state/mesh-harness, see harness/state.py), so a test that builds a platform from the
environment, or runs the `harness` CLI in a subprocess (which inherits os.environ), would otherwise
read or write the developer's own mesh state and fault ledger. Set before any test module is
imported; tests that need another folder set HARNESS_STATE_DIR themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="harness-tests-"))
os.environ["HARNESS_STATE_DIR"] = str(_SESSION_ROOT / "state")
os.environ["XDG_STATE_HOME"] = str(_SESSION_ROOT / "xdg-state")

# A suite started in the background by a non-interactive shell (`make test &`, `(... &)`) inherits SIGINT
# ignored, and every run it starts would too (an ignored signal stays ignored across exec, and Python then
# installs no KeyboardInterrupt handler): the tests that interrupt a run with SIGINT would see it finish.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)
