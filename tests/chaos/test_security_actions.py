"""The security experiments' action and probes without a mesh: apply_policy's undo puts back exactly what
was there, bad manifests are refused naming the field, and the probes refuse a platform they cannot probe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.chaos.context import use_platform
from harness.chaos.policies import apply_policy
from harness.chaos.record import RECORDER
from harness.chaos.security import mtls_refused, verdict
from harness.chaos.undo import REGISTRY
from harness.errors import ConfigError, HarnessError
from harness.platforms.fake import FakePlatform


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    use_platform(platform)
    RECORDER.clear()
    try:
        yield platform
    finally:
        REGISTRY.run_all()
        use_platform(None)
        RECORDER.clear()


def _policy(platform: FakePlatform, name: str) -> dict | None:
    return next((d for d in platform.resources() if d["metadata"]["name"] == name), None)


def test_apply_policy_replaces_the_policy_and_its_undo_restores_the_declared_one(fake: FakePlatform) -> None:
    declared = _policy(fake, "ai-agent-authz")
    assert declared is not None and len(declared["spec"]["rules"]) == 1
    apply_policy("variants/authz-seed-as-written.yaml")
    assert len(_policy(fake, "ai-agent-authz")["spec"]["rules"]) == 2
    REGISTRY.run_all()
    assert _policy(fake, "ai-agent-authz") == declared


def test_the_undo_of_an_added_policy_deletes_it(fake: FakePlatform) -> None:
    apply_policy("variants/security-gateway-deny-admin.yaml")
    assert _policy(fake, "security-gateway-deny-admin") is not None
    REGISTRY.run_all()
    assert _policy(fake, "security-gateway-deny-admin") is None


@pytest.mark.parametrize("manifest", ["variants/missing.yaml", "../../pyproject.toml", "/etc/passwd",
                                      "istio/gateway.yaml"])
def test_a_manifest_that_is_not_a_shipped_policy_file_is_refused(fake: FakePlatform, manifest: str) -> None:
    with pytest.raises(ConfigError) as error:
        apply_policy(manifest)
    assert error.value.field == "manifest"
    assert REGISTRY.run_all() == [], "nothing was registered or applied"


def test_security_probes_refuse_a_platform_they_cannot_probe(fake: FakePlatform) -> None:
    with pytest.raises(HarnessError, match="not implemented on the 'fake' platform"):
        mtls_refused()


def test_a_verdict_is_an_slo_row_recorded_for_the_report(fake: FakePlatform) -> None:
    result = verdict("example", "403", {"a": "403", "b": "200"})
    assert (result["verdict"], result["value"], result["source"], result["phase"]) == ("fail", 0.5, "security",
                                                                                       "baseline")
    assert RECORDER.snapshot()["security_checks"] == [{k: v for k, v in result.items()
                                                       if k not in ("expected", "observed")}]
