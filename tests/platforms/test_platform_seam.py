"""Specifications of the platform seam: the protocol, its typed status, and the in-memory fake beside it."""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import pytest

from harness import cli
from harness.errors import ConfigError, NotUpError
from harness.platforms.base import Platform
from harness.platforms.fake import FakePlatform
from harness.platforms.kind.platform import KindPlatform
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.model import CLEARED_KNOBS, POD_FIELDS, STATUS_FIELDS, MeshStatus

PROTOCOL = sorted(name for name in vars(Platform) if not name.startswith("_"))

#: A local status as the daemon answers it (launch.MeshProcesses.status), trimmed to one pod.
LOCAL_STATUS = {
    "platform": "local", "profile": "dev", "up": True, "state_dir": "/tmp/s",
    "ingress_url": "http://127.0.0.1:18080", "ingress_host": "ai-agent.local",
    "prometheus_url": "http://127.0.0.1:19090",
    "gateway": {"name": "istio-ingressgateway", "pid": 7, "ready": True, "admin_url": "http://127.0.0.1:1"},
    "prometheus": {"pid": 8, "ready": True}, "external": {"host": "api.openai.com", "address": "127.0.0.1:2"},
    "pods": [{"name": "user-v1-us-east-0", "service": "user-service", "app": "user", "version": "v1",
              "region": "us-east", "ready": True, "restarts": 0, "pid": 10, "sidecar_pid": 11,
              "sidecar_admin_url": "http://127.0.0.1:3", "inbound_port": 4, "app_port": 5, "outbound_port": 6,
              "service_account": "user-service", "held": False}],
    "daemon_pid": 9, "workload_certs_expire_at": 1.5, "workload_cert_rotations": 0,
    "last_push": {"at": 1.0, "reason": "up", "files": 3},
}


@pytest.mark.parametrize("implementation", [FakePlatform, LocalPlatform, KindPlatform], ids=lambda c: c.__name__)
def test_every_platform_and_the_fake_offer_every_member_of_the_protocol(implementation: type) -> None:
    missing = [name for name in PROTOCOL if not hasattr(implementation, name)]
    assert not missing, f"{implementation.__name__} lacks {missing}"
    for name in PROTOCOL:
        wanted = getattr(Platform, name)
        if callable(wanted):
            required = {p.name for p in inspect.signature(wanted).parameters.values() if p.kind == p.KEYWORD_ONLY}
            offered = set(inspect.signature(getattr(implementation, name)).parameters)
            assert required <= offered, (implementation.__name__, name, required - offered)


def test_a_status_round_trips_through_its_type_with_every_platform_specific_field() -> None:
    status = MeshStatus.from_json(LOCAL_STATUS)

    assert status.to_json() == LOCAL_STATUS
    assert status.pod("user-v1-us-east-0").extra["sidecar_pid"] == 11
    assert not status.pod("user-v1-us-east-0").held


def test_a_status_without_a_shared_field_is_refused_naming_it() -> None:
    broken = copy.deepcopy(LOCAL_STATUS)
    del broken["prometheus_url"]
    with pytest.raises(KeyError, match="prometheus_url"):
        MeshStatus.from_json(broken)


def test_status_json_prints_exactly_the_platforms_fields(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePlatform()
    monkeypatch.setattr(cli, "get_platform", lambda *_a, **_k: fake)
    monkeypatch.setattr(cli, "_report_orphans", lambda *_a: None, raising=False)

    assert cli.main(["status", "--json"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [*STATUS_FIELDS]
    assert all(list(pod)[:len(POD_FIELDS)] == [*POD_FIELDS] for pod in printed["pods"])
    assert printed == json.loads(json.dumps(fake.status()))


def test_the_fake_restarts_a_killed_pod_and_counts_it() -> None:
    fake = FakePlatform()
    pod = fake.pods()[0]["name"]

    fake.kill(pod)

    assert next(p for p in fake.pods() if p["name"] == pod)["restarts"] == 1
    assert ("kill", pod) in fake.calls


def test_the_fake_holds_a_pod_down_until_reset_releases_it_and_clears_knobs() -> None:
    fake = FakePlatform()
    pod = fake.pods()[0]["name"]
    fake.hold(pod, down=True)
    fake.set_knobs(pod, latency_ms=300)
    assert not next(p for p in fake.pods() if p["name"] == pod)["ready"]
    assert fake.holds() == [f"pod {pod} is held down"]

    result = fake.reset()

    assert result["released"] == [pod] and result["knobs_cleared"] == [pod]
    assert fake.get_knobs(pod) == CLEARED_KNOBS and fake.holds() == []


def test_the_fake_applies_and_deletes_resources_and_reset_restores_the_declared_ones() -> None:
    fake = FakePlatform()
    declared = fake.resources()
    extra = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "extra", "namespace": "parallel-ai"}, "spec": {"hosts": ["x"]}}

    fake.apply_documents([extra])
    assert len(fake.resources()) == len(declared) + 1
    fake.apply_documents([extra], delete=True)
    assert fake.resources() == declared


def test_the_fake_refuses_what_a_real_platform_refuses() -> None:
    fake = FakePlatform(up_now=False)
    with pytest.raises(NotUpError):
        fake.kill("user-v1-us-east-0")
    with pytest.raises(ConfigError, match="no pod"):
        FakePlatform().hold("no-such-pod", down=True)
    with pytest.raises(ConfigError, match="unknown knob"):
        FakePlatform().set_knobs("user-v1-us-east-0", latency=5)


def test_the_fake_applies_files_as_validated_documents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
                   "spec: {hosts: [x], nonsense: 1}\n")
    with pytest.raises(ConfigError):
        FakePlatform().apply([bad])


def test_harness_down_prints_what_the_platform_says_it_did(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePlatform()
    monkeypatch.setattr(cli, "get_platform", lambda *_a, **_k: fake)

    assert cli.main(["down"]) == 0

    assert capsys.readouterr().out == "the fake mesh is down\n" and not fake.is_up()
