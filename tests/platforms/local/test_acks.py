"""Push acknowledgement: file versions against Envoy's version_text readouts, refusals, timeouts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.errors import PlatformError
from harness.mesh.translate import CertPaths, ProxyNode, XdsWriter
from harness.mesh.translate.model import ProxyConfig
from harness.platforms.local.acks import AckWaiter, subscription

V1 = "outbound|8080|v1|ai-agent-service.parallel-ai.svc.cluster.local"


def _node(tmp_path: Path) -> ProxyNode:
    certs = CertPaths(tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "root.pem")
    return ProxyNode(name="p", kind="sidecar", namespace="parallel-ai", labels=(), region="us-east",
                     service_account="sa", certs=certs, xds_dir=tmp_path / "xds", admin_port=1)


def _config(endpoint_port: int) -> ProxyConfig:
    assignment = {"cluster_name": V1, "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": endpoint_port}}}}]}]}
    return ProxyConfig(listeners=[{"name": "l"}], clusters=[{"name": V1, "type": "EDS"}],
                       routes={"outbound|http": {"name": "outbound|http"}}, endpoints={V1: assignment})


def test_the_writer_writes_only_changed_files_and_versions_them_by_content(tmp_path: Path) -> None:
    writer = XdsWriter(_node(tmp_path))
    first = writer.write(_config(9000))
    assert sorted(f.kind for f in first) == ["cds", "eds", "lds", "rds"]
    assert writer.write(_config(9000)) == []
    [changed] = writer.write(_config(9001))
    assert (changed.kind, changed.name) == ("eds", V1)
    on_disk = json.loads(changed.path.read_text())
    assert on_disk["version_info"] == changed.version
    assert on_disk["resources"][0]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["port_value"] == 9001
    assert changed.version != next(f.version for f in first if f.kind == "eds")


class FakeAdmin:
    """An Envoy admin /stats answer that moves to the pushed versions after `lag` reads."""

    def __init__(self, old: dict[str, str], new: dict[str, str], lag: int, refuse: str | None = None) -> None:
        self.old, self.new, self.lag, self.refuse, self.reads = old, new, lag, refuse, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/stats" and "version_text" in request.url.params["filter"]
        self.reads += 1
        taken = self.reads > self.lag and self.refuse is None
        versions = self.new if taken else self.old
        lines = [f'{stat}.version_text: "{version}"' for stat, version in versions.items()]
        for stat in versions:
            refused = 1 if self.refuse == stat and self.reads > self.lag else 0
            lines += [f"{stat}.update_rejected: {refused}", f"{stat}.update_failure: 0"]
        return httpx.Response(200, text="\n".join(lines) + "\n")


def _written(tmp_path: Path) -> list:
    return XdsWriter(_node(tmp_path)).write(_config(9000))


def _stats(files: list, version_of: dict[str, str] | None = None) -> dict[str, str]:
    stats = {}
    for f in files:
        prefix = subscription(f)
        stat = "http.outbound_http" + prefix if prefix.startswith(".") else prefix
        stats[stat] = (version_of or {}).get(f.kind, f.version)
    return stats


def _wait(admin: FakeAdmin, files: list, timeout_s: float = 2.0, current: Any = None) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(admin)) as client:
            await AckWaiter().wait(client, {"p": "http://admin"}, {"p": files}, timeout_s=timeout_s, current=current)
    asyncio.run(run())


def test_waiting_ends_once_every_subscription_shows_the_written_version(tmp_path: Path) -> None:
    files = _written(tmp_path)
    admin = FakeAdmin(_stats(files, {k: "old" for k in ("lds", "cds", "rds", "eds")}), _stats(files), lag=3)
    _wait(admin, files)
    assert admin.reads == 4


def test_a_refused_update_is_an_error_naming_the_subscription(tmp_path: Path) -> None:
    files = _written(tmp_path)
    old = _stats(files, {k: "old" for k in ("lds", "cds", "rds", "eds")})
    admin = FakeAdmin(old, _stats(files), lag=1, refuse="http.outbound_http.rds.outbound|http")
    with pytest.raises(PlatformError, match=r"proxy p rejected .*\(http\.outbound_http\.rds\.outbound\|http\)"):
        _wait(admin, files)


def test_a_proxy_that_never_takes_the_push_times_out_naming_the_files(tmp_path: Path) -> None:
    files = _written(tmp_path)
    stale = _stats(files, {"eds": "old"})
    admin = FakeAdmin(stale, stale, lag=0)
    with pytest.raises(PlatformError, match=r"within 0.05 s: \{'p': \['outbound_8080_v1_ai-agent"):
        _wait(admin, files, timeout_s=0.05)


def test_a_proxy_that_is_not_running_is_not_waited_for(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    _wait(down, _written(tmp_path))  # type: ignore[arg-type]


def test_a_file_rewritten_by_a_later_push_counts_as_taken_at_its_newer_version(tmp_path: Path) -> None:
    """An endpoint push may replace an apply's EDS file before the apply is acknowledged."""
    files = _written(tmp_path)
    eds = next(f for f in files if f.kind == "eds")
    newer = _stats(files, {"eds": "v-newer"})
    admin = FakeAdmin(newer, newer, lag=0)
    with pytest.raises(PlatformError, match="within 0.05 s"):
        _wait(admin, files, timeout_s=0.05)
    _wait(admin, files, current=lambda proxy, path: "v-newer" if path == eds.path else None)
