"""End-to-end tests on real kind clusters: skipped unless `--with-kind` is given and Docker, kind, istioctl
and kubectl are here.

    .venv/bin/pytest tests/e2e --with-kind                       # one cluster
    .venv/bin/pytest tests/e2e --with-kind --kind-clusters 3     # the three-cluster mesh too

(The options are registered by this conftest, so name tests/e2e on the command line.) They create and
delete the clusters `parallel-ai` (or parallel-ai-<region>) and need the ports 18080 and 19090 on
127.0.0.1. Set HARNESS_E2E_RUNS to keep the runs' directories there (the workflow uploads them).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

TOOLS = ("docker", "kind", "istioctl", "kubectl")  # every program `harness up --platform kind` runs


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--with-kind", action="store_true", default=False,
                     help="run tests/e2e against real kind clusters (needs Docker, kind, istioctl, kubectl)")
    parser.addoption("--kind-clusters", type=int, choices=(1, 3), default=1,
                     help="3: also the three-cluster mesh (tests marked multicluster); heavy: 12 GiB for Docker")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multicluster: needs --kind-clusters 3 (three kind clusters, one mesh)")


def missing_tools(which=shutil.which, run=subprocess.run) -> str | None:
    """Why the end-to-end tests cannot run here, or None."""
    for program in TOOLS:
        if which(program) is None:
            return f"{program} is not installed"
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                   timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    return None if info.returncode == 0 else "the Docker daemon is not running"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = [item for item in items if "tests/e2e/" in item.nodeid.replace("\\", "/")]
    if not here:
        return
    if not config.getoption("--with-kind", default=False):
        reason: str | None = "end-to-end on kind: pass --with-kind to run"
    else:
        reason = missing_tools()
        reason = f"end-to-end on kind: {reason}" if reason else None
    for item in here:
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif "multicluster" in item.keywords and config.getoption("--kind-clusters") != 3:
            item.add_marker(pytest.mark.skip(reason="three-cluster mesh: pass --kind-clusters 3"))
        elif "multicluster" not in item.keywords and config.getoption("--kind-clusters") == 3:
            item.add_marker(pytest.mark.skip(reason="one-cluster tests: run without --kind-clusters 3"))
