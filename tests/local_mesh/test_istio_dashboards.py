"""Istio's own Grafana dashboards work against the local Prometheus after traffic through the live mesh.

The panel queries are copies of istio/istio's dashboards (tests/telemetry/data/istio-dashboards.yaml
names each origin). Variables are filled as a user picks them in Grafana: each mesh Service from the
dashboard's `service` list (the destination_service values Prometheus has), the reporter at the
dashboard's default (destination), every workload and namespace ("All"). A panel has data when one
of its queries returns a series, as Grafana draws it. HTTP panels are those on Istio's HTTP metrics;
TCP panels are counted apart: the mesh's only TCP traffic is ai-agent's TLS to the external API,
passed through by its sidecar and reported on the source side, so the TCP panels that read it must show
data (the second test) while those on TCP into mesh workloads or services have nothing to show, here
as on Istio; istio_build comes from Istio's control plane.

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
TCP_METRIC = re.compile(r"istio_tcp_")
# The mesh's only TCP traffic: ai-agent's sidecar passing its TLS to the external API through (reporter
# "source"; no sidecar reports it as destination). The TCP panels that read it must show data.
TCP_PANELS_WITH_TRAFFIC = {
    "Istio Mesh Dashboard / TCP Workloads",
    "Istio Workload Dashboard / Bytes Sent on Outgoing TCP Connection",
    "Istio Workload Dashboard / Bytes Received from Outgoing TCP Connection",
}
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


def _picks(mesh: Mesh, dashboard: dict, services: list[str]) -> list[dict[str, str]]:
    if "variable_queries" in dashboard:
        return [_resolve(mesh, dashboard["variable_queries"], WORKLOAD_PICKS)]
    if any("$service" in e for p in dashboard["panels"] for e in p["exprs"]):
        return [{"service": s} for s in services]
    return [{}]


def _tcp_panels_with_data(mesh: Mesh, spec: dict, services: list[str]) -> set[str]:
    shown = set()
    for dashboard in spec["dashboards"]:
        for pick in _picks(mesh, dashboard, services):
            variables = {**dashboard.get("variables", {}), **pick, "__rate_interval": "1m"}
            for panel in dashboard["panels"]:
                if (any(TCP_METRIC.search(e) for e in panel["exprs"])
                        and any(query(mesh, _fill(e, variables)) for e in panel["exprs"])):
                    shown.add(f"{dashboard['name']} / {panel['title']}")
    return shown


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
        for pick in _picks(mesh, dashboard, services):
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
    assert workload_total == 13, "the workload dashboard's HTTP panels (its 6 TCP panels are counted apart)"
    assert workload_shown / workload_total >= 0.95, f"workload dashboard: {workload_shown}/{workload_total}; empty: {empty}"
    assert shown / total >= 0.95, f"{shown}/{total} HTTP panels show data; empty: {empty}"


def test_the_tcp_panels_on_the_meshs_tcp_traffic_show_data(mesh: Mesh) -> None:
    """The external API's TLS passes through ai-agent's sidecar as TCP, reported (reporter "source") when
    the connection closes, as istio_stats.cc reports a MESH_EXTERNAL peer (translate/passthrough.py); the
    stand-in closes an idle keep-alive connection after a few seconds. The panels that read that traffic
    show data; the other TCP panels read TCP into mesh workloads, which this mesh does not carry."""
    for i in range(10):
        assert mesh.chat(user=f"u{i}").status_code == 200
    spec = yaml.safe_load(DASHBOARDS.read_text(encoding="utf-8"))
    services = [s for s in {r["metric"].get("destination_service") for r in query(
        mesh, "count by (destination_service) (istio_requests_total)")} if s and s.startswith(MESH_SERVICES)]
    deadline = time.monotonic() + 30  # connection close, then two scrapes for irate()/rate()
    shown: set[str] = set()
    while time.monotonic() < deadline and not TCP_PANELS_WITH_TRAFFIC <= shown:
        shown = _tcp_panels_with_data(mesh, spec, services)
        time.sleep(1)
    print(f"Istio dashboards: TCP panels with data: {sorted(shown)}")
    assert TCP_PANELS_WITH_TRAFFIC <= shown, f"TCP panels with data: {sorted(shown)}"
