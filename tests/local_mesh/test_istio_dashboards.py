"""Istio's own Grafana dashboards work against the local Prometheus after traffic through the live mesh.

The panel queries are copies of istio/istio's dashboards (tests/telemetry/data/istio-dashboards.yaml
names each origin). Variables are filled as a user picks them in Grafana: each mesh Service from the
dashboard's `service` list (the destination_service values Prometheus has), the reporter at the
dashboard's default (destination), every workload and namespace ("All"). A panel has data when one
of its queries returns a series, as Grafana draws it. HTTP panels are those on Istio's HTTP metrics;
TCP panels are left out: they need istio_tcp_* series, which the local mesh does not emit yet (its
external API path is HTTP to the sidecar; TLS passthrough with TCP metrics is being added, and then
these panels count too); istio_build comes from Istio's control plane.

The workload dashboard (istio-workload-dashboard.json) keeps its variable queries with the panels;
they run against Prometheus as Grafana runs them (query_result text matched by the variable's regex,
label_values from the label API), in the dashboard's order. The user picks namespace parallel-ai and
workload ai-agent-v1-us-east (the seed's Deployment, as destination_workload names it; it serves the
gateway and calls user, analytics and the external API, so the inbound and outbound rows both apply),
keeps the reporter at its default (destination), and leaves the include-all variables (inbound
namespace/workload, destination service) at "All", which Grafana's Prometheus datasource writes as a
regex alternation of the escaped options.
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


WORKLOAD_PICKS = {"namespace": "parallel-ai", "workload": "ai-agent-v1-us-east"}
GRAFANA_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


def _options(mesh: Mesh, variable: dict, filled: dict[str, str]) -> list[str]:
    """A variable's options as Grafana lists them: label_values from the label API, query_result via its regex."""
    promql = _fill(variable["query"], filled)
    if promql.startswith("label_values("):
        label = promql.removeprefix("label_values(").removesuffix(")")
        response = mesh.client.get(f"{mesh.status['prometheus_url']}/api/v1/label/{label}/values")
        response.raise_for_status()
        return sorted(response.json()["data"])
    pattern = re.compile(variable["regex"])
    texts = ["{" + ",".join(f'{k}="{v}"' for k, v in sorted(r["metric"].items())) + "} " + r["value"][1]
             for r in query(mesh, promql.removeprefix("query_result(").removesuffix(")"))]
    return sorted({m.group(1) for text in texts if (m := pattern.search(text))})


def _resolve(mesh: Mesh, variables: list[dict], picks: dict[str, str]) -> dict[str, str]:
    """Fill a dashboard's variables in order, each query seeing the ones before it, as Grafana refreshes them."""
    filled: dict[str, str] = {}
    for variable in variables:
        options = _options(mesh, variable, filled)
        name = variable["name"]
        assert options, f"Grafana's {name} list is empty"
        if variable["include_all"]:
            # Grafana's "All" for a multi-value variable without allValue: (a|b|c), regex characters escaped.
            filled[name] = "(" + "|".join(GRAFANA_REGEX_SPECIAL.sub(lambda c: "\\\\" + c.group(), o)
                                          for o in options) + ")"
            continue
        chosen = variable.get("default", picks.get(name))
        assert chosen in options, f"Grafana's {name} list {options} does not offer {chosen}"
        filled[name] = chosen
    return filled


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
    per_dashboard: dict[str, list[int]] = {}
    for dashboard in spec["dashboards"]:
        counts = per_dashboard.setdefault(dashboard["name"], [0, 0])
        if "variable_queries" in dashboard:
            picks = [_resolve(mesh, dashboard["variable_queries"], WORKLOAD_PICKS)]
        else:
            picks = [{"service": s} for s in services] if any("$service" in e for p in dashboard["panels"]
                                                              for e in p["exprs"]) else [{}]
        for pick in picks:
            variables = {**dashboard.get("variables", {}), **pick, "__rate_interval": "1m"}
            for panel in dashboard["panels"]:
                if not any(HTTP_METRIC.search(e) for e in panel["exprs"]):
                    continue
                counts[1] += 1
                if any(query(mesh, _fill(e, variables)) for e in panel["exprs"]):
                    shown += 1
                    counts[0] += 1
                else:
                    empty.append(f"{dashboard['name']} / {panel['title']} {pick}")
    total = shown + len(empty)
    print(f"Istio dashboards: {shown}/{total} HTTP panels show data ({per_dashboard}); empty: {empty}")
    assert total >= 50
    workload_shown, workload_total = per_dashboard["Istio Workload Dashboard"]
    assert workload_total == 13, "the workload dashboard's HTTP panels (its 6 TCP panels are left out above)"
    assert workload_shown / workload_total >= 0.95, f"workload dashboard: {workload_shown}/{workload_total}; empty: {empty}"
    assert shown / total >= 0.95, f"{shown}/{total} HTTP panels show data; empty: {empty}"
