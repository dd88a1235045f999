"""End-to-end tests on real kind clusters: skipped unless `--with-kind` is given and kind and Docker are here.

    .venv/bin/pytest tests/e2e --with-kind

(The option is registered by this conftest, so name tests/e2e on the command line.) They create and
delete the cluster `parallel-ai` (kind-parallel-ai) and need the ports 18080 and 19090 on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-kind", action="store_true", default=False,
                     help="run tests/e2e against real kind clusters (needs Docker, kind, istioctl, kubectl)")


def _missing() -> str | None:
    """Why the end-to-end tests cannot run here, or None."""
    for program in ("kind", "docker"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    return None if info.returncode == 0 else "the Docker daemon is not running"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = [item for item in items if "tests/e2e/" in item.nodeid.replace("\\", "/")]
    if not here:
        return
    if not config.getoption("--with-kind", default=False):
        reason = "end-to-end on kind: pass --with-kind to run"
    else:
        reason = _missing()
        if reason is None:
            return
        reason = f"end-to-end on kind: {reason}"
    for item in here:
        item.add_marker(pytest.mark.skip(reason=reason))
