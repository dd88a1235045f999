"""The kind platform's settings, its HARNESS_* variables and its public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.platforms.kind as kind
from harness.errors import ConfigError
from harness.platforms.kind import KindPlatform, KindSettings


def test_the_public_surface_is_the_sorted_all() -> None:
    assert kind.__all__ == sorted(kind.__all__)
    assert all(hasattr(kind, name) for name in kind.__all__)


def test_every_setting_can_come_from_a_harness_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CLUSTERS", "3")
    monkeypatch.setenv("HARNESS_ALLOW_CONTEXT", "staging")
    monkeypatch.setenv("HARNESS_DRY_RUN", "true")
    monkeypatch.setenv("HARNESS_MAX_PERCENT", "50")
    monkeypatch.setenv("HARNESS_KUBECONFIG", "/tmp/kubeconfig")
    settings = KindSettings.from_env()
    assert (settings.clusters, settings.allow_context, settings.dry_run, settings.max_percent) == (3, "staging", True,
                                                                                                    50.0)
    assert settings.kubeconfig == Path("/tmp/kubeconfig")
    assert KindSettings.from_env(clusters=1, dry_run=None).clusters == 1  # a flag wins; None means unset


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("HARNESS_CLUSTERS", "2", "clusters: expected 1 or 3 clusters, got 2"),
    ("HARNESS_CLUSTERS", "three", "HARNESS_CLUSTERS: expected a number, got 'three'"),
    ("HARNESS_DRY_RUN", "maybe", "HARNESS_DRY_RUN: expected 1/true/yes or 0/false/no, got 'maybe'"),
    ("HARNESS_PROFILE", "staging", "profile: expected one of dev, prod, got 'staging'"),
    ("HARNESS_MAX_PERCENT", "0", "max_percent: expected a percent above 0 and at most 100, got 0.0"),
])
def test_a_bad_setting_names_the_variable_or_field_and_what_was_expected(monkeypatch: pytest.MonkeyPatch,
                                                                         variable: str, value: str,
                                                                         message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        KindSettings.from_env()


def test_one_cluster_runs_every_region_three_clusters_one_region_each() -> None:
    (one,) = KindSettings().cluster_specs()
    assert (one.name, one.context, one.regions, one.primary) == ("parallel-ai", "kind-parallel-ai",
                                                                 ("us-east", "us-west", "eu-west"), True)
    three = KindSettings(clusters=3).cluster_specs()
    assert [(s.context, s.regions, s.network, s.primary) for s in three] == [
        ("kind-parallel-ai-us-east", ("us-east",), "network-us-east", True),
        ("kind-parallel-ai-us-west", ("us-west",), "network-us-west", False),
        ("kind-parallel-ai-eu-west", ("eu-west",), "network-eu-west", False),
    ]
    assert KindSettings(clusters=3).cluster_of_region("eu-west").name == "parallel-ai-eu-west"


def test_a_context_override_names_one_cluster_only() -> None:
    with pytest.raises(ConfigError, match="context: a context override names one cluster"):
        KindSettings(clusters=3, context="kind-other")


def test_the_platform_is_named_kind_and_builds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_PROFILE", "prod")
    platform = KindPlatform.from_env(dry_run=True)
    assert platform.name == "kind" and platform.settings.profile == "prod" and platform.steps == []
