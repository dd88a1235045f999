"""Retries, outlier detection, pod restarts and locality failover, observed through the ingress."""

from __future__ import annotations

import re
from collections import Counter

from tests.local_mesh.meshkit import Mesh


V1_CLUSTER = "outbound|8080|v1|ai-agent-service.parallel-ai.svc.cluster.local"
LOCAL_V1 = "ai-agent-v1-us-east-0"  # the ingress runs in us-east
REMOTE_V1 = "ai-agent-v1-us-west-0"


def served_by(mesh: Mesh, count: int, headers: dict[str, str] | None = None) -> tuple[Counter[int], Counter[str]]:
    codes: Counter[int] = Counter()
    pods: Counter[str] = Counter()
    for _ in range(count):
        response = mesh.chat(headers)
        codes[response.status_code] += 1
        pods[response.headers.get("x-served-by", "")] += 1
    return codes, pods


def gateway_stat(mesh: Mesh, name: str) -> int:
    text = mesh.client.get(mesh.status["gateway"]["admin_url"] + "/stats", params={"filter": re.escape(name)}).text
    match = re.search(rf"^{re.escape(name)}: (\d+)$", text, re.M)
    return int(match.group(1)) if match else 0


def test_retries_hide_a_v1_pod_that_answers_503_and_outlier_detection_ejects_it(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    retries_before = gateway_stat(mesh, f"cluster.{V1_CLUSTER}.upstream_rq_retry")
    mesh.knobs(LOCAL_V1, error_rate=1.0, error_status=503)
    try:
        codes, pods = served_by(mesh, 60)
        assert codes == Counter({200: 60})
        assert pods[LOCAL_V1] == 0 and pods[REMOTE_V1] > 0
        assert gateway_stat(mesh, f"cluster.{V1_CLUSTER}.upstream_rq_retry") > retries_before
        assert gateway_stat(mesh, f"cluster.{V1_CLUSTER}.outlier_detection.ejections_active") == 1
        clusters = mesh.client.get(mesh.status["gateway"]["admin_url"] + "/clusters").text
        local_port = mesh.pod(LOCAL_V1)["inbound_port"]
        assert f"{V1_CLUSTER}::127.0.0.1:{local_port}::health_flags::/failed_outlier_check" in clusters
    finally:
        mesh.reset_knobs()
        mesh.clear_outlier_state()
    codes, pods = served_by(mesh, 20)
    assert codes == Counter({200: 20}) and pods[LOCAL_V1] > 0


def test_a_killed_pod_is_restarted_and_traffic_recovers(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    before = mesh.pod(LOCAL_V1)
    killed = mesh.platform.kill(LOCAL_V1)
    assert killed["killed_pids"] == {"app": before["pid"], "sidecar": before["sidecar_pid"]}
    codes, _ = served_by(mesh, 30)
    # Istio's default retries cover connect failures and 503s but not a reset of a request that
    # was in flight on the dying proxy's connection, so one such request may fail.
    assert codes[200] >= 29, codes
    mesh.wait_for(lambda: mesh.pod(LOCAL_V1)["ready"] and mesh.pod(LOCAL_V1)["restarts"] == before["restarts"] + 1,
                  20, "the killed pod to be restarted")
    after = mesh.pod(LOCAL_V1)
    assert after["pid"] != before["pid"] and after["sidecar_pid"] != before["sidecar_pid"]
    mesh.wait_for(lambda: served_by(mesh, 10)[1][LOCAL_V1] > 0, 10, "traffic back on the restarted pod")
    assert served_by(mesh, 20)[0] == Counter({200: 20})


def test_app_only_kill_leaves_the_sidecar_running(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    before = mesh.pod(LOCAL_V1)
    mesh.platform.kill(LOCAL_V1, app_only=True)
    mesh.wait_for(lambda: mesh.pod(LOCAL_V1)["ready"] and mesh.pod(LOCAL_V1)["pid"] != before["pid"], 20,
                  "the app to be restarted")
    assert mesh.pod(LOCAL_V1)["sidecar_pid"] == before["sidecar_pid"]


def test_with_every_us_east_ai_agent_pod_down_traffic_is_served_from_another_region(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    us_east = [p["name"] for p in mesh.platform.status()["pods"] if p["app"] == "ai-agent" and p["region"] == "us-east"]
    assert us_east
    for pod in us_east:
        mesh.platform.hold(pod, down=True)
    try:
        codes, pods = served_by(mesh, 40)
        assert codes == Counter({200: 40})
        regions = {mesh.pod(name)["region"] for name in pods}
        assert "us-east" not in regions and "us-west" in regions, pods
    finally:
        for pod in us_east:
            mesh.platform.hold(pod, down=False)
    mesh.wait_for(mesh.all_ready, 20, "the held pods to come back")
    mesh.wait_for(lambda: served_by(mesh, 10)[1][LOCAL_V1] > 0, 10, "traffic back in us-east")
