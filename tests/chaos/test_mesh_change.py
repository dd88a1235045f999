"""An experiment's `mesh:`: shipped DestinationRules for the whole run, recorded in the ledger, restored.

On the fake platform (harness.platforms.fake: the declared Istio resources as data) with a real fault
ledger in a temporary directory, and through the session's own hooks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos.ledger import FaultLedger
from harness.chaos.tuning import apply_mesh_change, mesh_change_documents
from harness.errors import ConfigError
from harness.platforms.fake import FakePlatform
from harness.run.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]
FIX = "variants/connection-pool-for-load.yaml"


def pools(platform: FakePlatform) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["trafficPolicy"]["connectionPool"]["http"]
            for d in platform.resources() if d["kind"] == "DestinationRule"}


def test_the_change_replaces_the_rules_of_the_same_name_and_the_restore_puts_back_the_declared_ones(
        tmp_path: Path) -> None:
    platform = FakePlatform(ledger_dir=tmp_path / "ledger")
    declared = platform.resources()
    assert pools(platform)["ai-agent-destination"]["maxRetries"] == 3
    restore = apply_mesh_change(platform, FIX)
    assert pools(platform)["ai-agent-destination"]["maxRetries"] == 100
    assert "maxRequestsPerConnection" not in pools(platform)["connection-pool-settings"]
    (entry,) = FaultLedger(tmp_path / "ledger").entries()  # a killed run is undone from here
    assert entry.kind == "istio" and len(entry.undo["apply"]) == 3
    restore()
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(platform.resources(), key=key) == sorted(declared, key=key)
    assert FaultLedger(tmp_path / "ledger").entries() == []


def test_a_telemetry_variant_raises_the_sampling_for_the_run_and_the_restore_puts_back_the_shipped_one(
        tmp_path: Path) -> None:
    """Issue 12: "sampling per randomSamplingPercentage (1% by default; an experiment may raise it)"."""
    platform = FakePlatform(ledger_dir=tmp_path / "ledger")

    def sampling() -> float:
        (tracing,) = [d for d in platform.resources() if d["kind"] == "Telemetry"
                      and d["metadata"]["name"] == "custom-metrics"]
        return tracing["spec"]["tracing"][0]["randomSamplingPercentage"]

    assert sampling() == 1.0
    restore = apply_mesh_change(platform, "variants/tracing-full-sampling.yaml")
    assert sampling() == 100.0
    (entry,) = FaultLedger(tmp_path / "ledger").entries()
    assert [d["kind"] for d in entry.undo["apply"]] == ["Telemetry"]
    restore()
    assert sampling() == 1.0 and FaultLedger(tmp_path / "ledger").entries() == []
    assert parse_settings({"mesh": ["variants/tracing-full-sampling.yaml"]}, ROOT).mesh == (
        "variants/tracing-full-sampling.yaml",)


def _sampling_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, change) -> str:
    """variants/<name>.yaml: the shipped full-sampling variant changed by `change`, in a manifests folder
    of its own beside a copy of the shipped Telemetry (tuning reads both from MANIFESTS_DIR)."""
    import yaml

    from harness.chaos import tuning
    from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents

    (variant,) = load_yaml_documents(MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml")
    change(variant["spec"])
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / f"{name}.yaml").write_text(yaml.safe_dump(variant))
    (tmp_path / "istio").mkdir()
    (tmp_path / "istio" / "telemetry.yaml").write_text((MANIFESTS_DIR / "istio" / "telemetry.yaml").read_text())
    monkeypatch.setattr(tuning, "MANIFESTS_DIR", tmp_path)
    return f"variants/{name}.yaml"


def test_a_runs_telemetry_may_change_only_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Other metrics would change the proxies' stat names halfway into the warm-up."""
    manifest = _sampling_variant(tmp_path, monkeypatch, "metrics",
                                 lambda spec: spec["metrics"][0]["overrides"].pop())
    with pytest.raises(ConfigError) as caught:
        mesh_change_documents(manifest)
    assert caught.value.field == "manifest" and "may change only spec.tracing" in caught.value.message
    assert mesh_change_documents("istio/telemetry.yaml")  # the shipped one itself: tracing unchanged


def test_a_mesh_variant_is_checked_as_the_whole_mesh_it_makes_when_the_settings_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before anything starts, not when the session applies it with the load about to start."""
    two_kinds = {"header": {"name": "x-who"}, "literal": {"value": "x"}}
    manifest = _sampling_variant(tmp_path, monkeypatch, "bad-tags",
                                 lambda spec: spec["tracing"][0]["customTags"].update(who=two_kinds))
    with pytest.raises(ConfigError) as caught:
        parse_settings({"mesh": [manifest]}, ROOT)
    assert caught.value.field == "controls[harness].provider.arguments.mesh[0]"
    assert "customTags.who" in caught.value.message  # the whole mesh's check, not the kinds alone
    assert mesh_change_documents(manifest)  # which pass


def test_only_destination_rules_or_telemetry_under_the_shipped_manifests_are_accepted() -> None:
    for bad in ("../../../etc/passwd.yaml", "istio/gateway.yaml", "variants/nope.yaml"):
        with pytest.raises(ConfigError) as caught:
            mesh_change_documents(bad)
        assert caught.value.field == "manifest"
    with pytest.raises(ConfigError) as caught:
        parse_settings({"mesh": ["variants/authz-seed-as-written.yaml"]}, ROOT)
    assert caught.value.field == "controls[harness].provider.arguments.mesh[0]"
    assert "only DestinationRule or Telemetry" in caught.value.message
    assert parse_settings({"mesh": [FIX]}, ROOT).mesh == (FIX,)
