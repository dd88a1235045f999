"""kind's Prometheus addon runs without its lifecycle and admin HTTP APIs, and nothing of the harness needs them.

Prometheus' management API (https://prometheus.io/docs/prometheus/latest/management_api/): `PUT/POST
/-/reload` and `/-/quit` are "disabled by default and can be enabled via the --web.enable-lifecycle
flag"; a reload can also be triggered by SIGHUP. With the flag, any pod reaching port 9090 (or the
NodePort) could stop the run's Prometheus mid-run, and the verdict would have no data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.platforms.kind import render

REPO = Path(__file__).resolve().parents[2]
OPEN_FLAGS = ("--web.enable-lifecycle", "--web.enable-admin-api")


def _prometheus_args(documents: list[dict]) -> list[str]:
    [deployment] = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "prometheus"]
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "prometheus"]
    return container["args"]


@pytest.mark.parametrize("documents", [render.addon_documents, render.harness_namespace_addons],
                         ids=["istio-system", "no-create"])
def test_the_prometheus_addon_runs_without_lifecycle_or_admin_api(documents) -> None:
    args = _prometheus_args(documents())
    assert "--config.file=/etc/prometheus/prometheus.yml" in args, "the Deployment read is Prometheus'"
    assert [a for a in args if a.startswith(OPEN_FLAGS)] == []


def test_nothing_the_harness_runs_against_kind_calls_reload_or_quit() -> None:
    """The flag was dropped because no code path uses it: a new caller must bring it back knowingly."""
    sources = [*(REPO / "harness" / "platforms" / "kind").rglob("*.py"), *(REPO / "harness" / "run").rglob("*.py"),
               *(REPO / "harness" / "slo").rglob("*.py"), *(REPO / "tests" / "e2e").rglob("*.py"),
               *(REPO / "docker").rglob("*"), *(REPO / ".github").rglob("*.y*ml")]
    callers = [str(p.relative_to(REPO)) for p in sources if p.is_file()
               and ("/-/reload" in p.read_text(errors="replace") or "/-/quit" in p.read_text(errors="replace"))]
    assert len(sources) > 20 and callers == []
