"""Running experiments: Chaos Toolkit drives them, the harness adds load, phases, SLOs and the verdict."""

# The public surface, imported on first use: Chaos Toolkit imports harness.run.control by name in
# every run, and that must not drag in the runner (and its report writers) before it is needed.

import importlib

__all__ = ["RunOutcome", "check_only", "default_run_dir", "run_file"]

_HOMES = {"RunOutcome": "harness.run.runner", "check_only": "harness.run.runner",
          "default_run_dir": "harness.run.runner", "run_file": "harness.run.runner"}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'harness.run' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
