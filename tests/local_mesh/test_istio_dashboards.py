"""Istio's own Grafana dashboards work against the local Prometheus after traffic through the live mesh.

The panel queries are copies of istio/istio's dashboards (tests/telemetry/data/istio-dashboards.yaml
names each origin). Variables are filled as a user picks them in Grafana: each mesh Service from the
dashboard's `service` list (the destination_service values Prometheus has), the reporter at the
dashboard's default (destination), every workload and namespace ("All"). A panel has data when one
of its queries returns a series, as Grafana draws it. HTTP panels are those on Istio's HTTP metrics;
TCP panels need TCP traffic, which the local mesh does not carry (the external API is HTTP to the
sidecar here), and istio_build comes from Istio's control plane.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml

from tests.local_mesh.meshkit import Mesh
from tests.local_mesh.test_external_and_telemetry import query

DASHBOARDS = Path(__file__).parents[1] / "telemetry" / "data" / "istio-dashboards.yaml"
HTTP_METRIC = re.compile(r"istio_(requests_total|request_duration_milliseconds|request_bytes|response_bytes)")
MESH_SERVICES = ("ai-agent-service", "user-service", "analytics-service")


def _fill(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):  # $srcwl before $srcns is moot, but $service before $s...
        expr = expr.replace("$" + name, variables[name])
    return expr


def test_at_least_95_percent_of_istios_http_dashboard_panels_show_data(mesh: Mesh) -> None:
    # Two bursts a few seconds apart: irate() needs two samples of each series in its window.
    for burst in range(2):
        for i in range(30):
            assert mesh.chat(user=f"u{i % 7}").status_code == 200
        time.sleep(3)  # Envoy's stats flush, a scrape and a rule evaluation
    offered = {r["metric"].get("destination_service") for r in query(mesh, "count by (destination_service) (istio_requests_total)")}
    services = [s for s in offered if s and any(s.startswith(m) for m in MESH_SERVICES)]
    assert len(services) == len(MESH_SERVICES), f"the dashboard's service list offers {sorted(offered)}"
    spec = yaml.safe_load(DASHBOARDS.read_text(encoding="utf-8"))
    shown, empty = 0, []
    for dashboard in spec["dashboards"]:
        picks = [{"service": s} for s in services] if any("$service" in e for p in dashboard["panels"]
                                                          for e in p["exprs"]) else [{}]
        for pick in picks:
            variables = {**dashboard["variables"], **pick, "__rate_interval": "1m"}
            for panel in dashboard["panels"]:
                if not any(HTTP_METRIC.search(e) for e in panel["exprs"]):
                    continue
                if any(query(mesh, _fill(e, variables)) for e in panel["exprs"]):
                    shown += 1
                else:
                    empty.append(f"{dashboard['name']} / {panel['title']} {pick}")
    total = shown + len(empty)
    print(f"Istio dashboards: {shown}/{total} HTTP panels show data; empty: {empty}")
    assert total >= 50
    assert shown / total >= 0.95, f"{shown}/{total} HTTP panels show data; empty: {empty}"
