"""The load layer's runtime error; bad input is harness.errors.ConfigError like everywhere else."""

from __future__ import annotations

from harness.errors import HarnessError


class LoadError(HarnessError):
    """Locust could not be started, did not start in time, or did not finish when waited for.

    The message names the log file in the run directory whose tail says why. Belongs in
    harness/errors.py's tree under HarnessError (kept here while the load layer is built).
    """
