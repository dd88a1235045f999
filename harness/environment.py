"""The one settings layer for the harness's own HARNESS_* environment variables: each is named and read here."""

# Each platform's settings (platforms/local/settings.py, platforms/kind/settings.py: HARNESS_CLUSTERS,
# HARNESS_DRY_RUN, ...) map HARNESS_<FIELD> onto their own dataclass fields with units and checks, and a
# run's load and SLO overrides (HARNESS_USERS, HARNESS_WORKERS, ...) are collected in run/overrides.py
# from the environment the CLI hands it; everything else the harness takes from the environment is listed below and read
# through `get`, so a variable has one name, one meaning and one place that reads it. Tests may pass
# their own `environ`.

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["VARIABLES", "get", "get_path"]

#: Every variable read through this module, with what it sets.
VARIABLES: dict[str, str] = {
    "HARNESS_BASELINE_DIR": "where baselines are saved and looked up (default ./baselines)",
    "HARNESS_BASELINE_S": "every experiment's baseline phase, in seconds (shortens runs, e.g. in CI)",
    "HARNESS_EXPERIMENTS_DIR": "where `harness suite` looks for experiments (default experiments/)",
    "HARNESS_JSON": "1: `harness status` prints JSON (--json)",
    "HARNESS_KEEP_UP": "1: leave the mesh up after run, suite or game day (--keep-up)",
    "HARNESS_MANIFESTS_DIR": "the mesh's manifests, instead of the shipped ones",
    "HARNESS_NO_PROGRESS": "1: no live progress line (--no-progress)",
    "HARNESS_PLATFORM": "where the mesh runs: local (default) or kind (--platform)",
    "HARNESS_PROFILE": "dev (access logs) or prod (proxy before app) (--profile)",
    "HARNESS_RECOVERY_S": "every experiment's recovery phase, in seconds",
    "HARNESS_REPORT_DIR": "where a run's or a suite's reports go (--report-dir)",
    "HARNESS_RUN_DIR": "plain `chaos run`: where the harness control writes the run (default runs/<time>-<title>)",
    "HARNESS_STATE_DIR": "the harness's state folder (default $XDG_STATE_HOME/mesh-harness; LocalSettings too)",
    "HARNESS_TOLERANCE": "`harness compare` tolerances, e.g. p99=10%,availability=0.1 (--tolerance)",
    "HARNESS_WARMUP_S": "every experiment's warm-up before the baseline, in seconds",
    "HARNESS_YES": "1: a game day answers go to every step, a rehearsal (--yes)",
}


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a listed variable; None when it is unset or empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not one of the harness's variables (harness/environment.py VARIABLES)")
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None


def get_path(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """A listed variable naming a file or folder, as a Path; None when unset or empty."""
    value = get(name, environ)
    return Path(value) if value is not None else None
