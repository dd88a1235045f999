"""Which Envoy stats a local proxy exports: Istio's inclusion, the harness's own reads, the profile's matcher.

Followed: istio/istio pkg/bootstrap/config.go (v2Prefixes "reporter=", requiredEnvoyStatsMatcherInclusionPrefixes
"cluster_manager,listener_manager,server,cluster.xds-grpc,wasm", v2Suffix "component,istio",
rbacEnvoyStatsMatcherInclusionSuffix, requiredEnvoyStatsMatcherInclusionRegexes `vhost\\..*\\.route\\..*`) and
tools/packaging/common/envoy_bootstrap.json (prefixes, then suffixes, then regexps as safe_regex);
istio.io "Envoy Statistics" (proxyStatsMatcher adds to the default set); the seed's dev and prod profiles.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.mesh import profiles
from harness.mesh.profiles import proxy_stats_inclusion
from harness.mesh.translate.model import StatsInclusion
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.mesh.translate.stats import (
    BUCKETS_ANNOTATION, ENVOY_DEFAULT_BUCKETS_MS, ISTIO_LATENCY_PREFIX, LATENCY_BUCKETS_MS, envoy_stats_bootstrap,
    stats_matcher,
)

ISTIO_PATTERNS = [
    {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "listener_manager"}, {"prefix": "server"},
    {"prefix": "cluster.xds-grpc"}, {"prefix": "wasm"}, {"prefix": "component"}, {"prefix": "istio"},
    {"suffix": "rbac.allowed"}, {"suffix": "rbac.denied"}, {"suffix": "shadow_allowed"}, {"suffix": "shadow_denied"},
    {"safe_regex": {"regex": r"vhost\..*\.route\..*"}},
]
# The local control plane's push acknowledgements (translate/stats.py).
HARNESS_PATTERNS = [{"safe_regex": {"regex": r".*\.(version_text|update_rejected|update_failure)"}}]
# The run's ejection gate, on both platforms (mesh/profiles.HARNESS_REGEXPS).
EJECTIONS = r"cluster\..*\.outlier_detection\.ejections_active"


def test_the_prod_profile_exports_istios_default_set_and_what_the_harness_reads() -> None:
    assert proxy_stats_inclusion("prod") == StatsInclusion(regexps=(EJECTIONS,))
    assert stats_matcher(proxy_stats_inclusion("prod")) == {"inclusion_list": {"patterns": [
        *ISTIO_PATTERNS, *HARNESS_PATTERNS, {"safe_regex": {"regex": EJECTIONS}}]}}


def test_the_dev_profile_adds_the_seeds_inclusion_regexps() -> None:
    """Seed, Development Environment: proxyStatsMatcher.inclusionRegexps [".*_cx_.*", ".*_rq_.*"]."""
    dev = proxy_stats_inclusion("dev")
    assert dev == StatsInclusion(regexps=(".*_cx_.*", ".*_rq_.*", EJECTIONS))
    patterns = envoy_stats_bootstrap(inclusion=dev)["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]  # type: ignore[index]
    assert patterns == ISTIO_PATTERNS + HARNESS_PATTERNS + [{"safe_regex": {"regex": r}} for r in dev.regexps]


def test_only_the_request_duration_gets_the_fine_latency_buckets() -> None:
    """Every other histogram keeps Envoy's default buckets, as on an Istio proxy without the
    sidecar.istio.io/statsHistogramBuckets annotation."""
    settings = envoy_stats_bootstrap()["stats_config"]["histogram_bucket_settings"]  # type: ignore[index]
    assert settings == [{"match": {"prefix": "istio.request_duration_milliseconds"}, "buckets": list(LATENCY_BUCKETS_MS)}]


def test_the_latency_buckets_hold_every_bucket_an_istio_proxy_has_and_kind_sets_the_same() -> None:
    """An Istio user's query on le="2500" (or 600000 ...) finds its bucket: Envoy's defaults
    (source/common/stats/histogram_impl.cc, HistogramSettingsImpl::defaultBuckets), which an Istio proxy
    uses, are all there. On kind every sidecar and the gateway get the same buckets through Istio's
    sidecar.istio.io/statsHistogramBuckets annotation (prefix-matched on the stat name,
    istiocustom.istio_request_duration_milliseconds on an Istio proxy), so latency SLOs interpolate in
    the same buckets on both platforms."""
    assert set(ENVOY_DEFAULT_BUCKETS_MS) <= set(LATENCY_BUCKETS_MS)
    assert list(LATENCY_BUCKETS_MS) == sorted(set(LATENCY_BUCKETS_MS))
    manifests = [MANIFESTS_DIR / "kubernetes" / "deployments.yaml", MANIFESTS_DIR / "kind" / "gateway" / "ingress-gateway.yaml"]
    deployments = [doc for path in manifests for doc in load_yaml_documents(path) if doc and doc["kind"] == "Deployment"]
    assert len(deployments) == 7  # six services' Deployments and the ingress gateway
    for doc in deployments:
        annotation = doc["spec"]["template"]["metadata"]["annotations"][BUCKETS_ANNOTATION]
        assert json.loads(annotation) == {ISTIO_LATENCY_PREFIX: list(LATENCY_BUCKETS_MS)}, doc["metadata"]["name"]


HEAD = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: dev-config\n"


def _istio_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlay: str) -> Path:
    shutil.copy(profiles.ISTIO_DIR / "control-plane.yaml", tmp_path / "control-plane.yaml")
    (tmp_path / "profile-dev.yaml").write_text(overlay, encoding="utf-8")
    monkeypatch.setattr(profiles, "ISTIO_DIR", tmp_path)
    return tmp_path / "profile-dev.yaml"


def test_an_exclusion_matcher_is_refused_naming_the_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's prod exclusionRegexps: ProxyConfig's ProxyStatsMatcher has inclusion matchers only."""
    path = _istio_dir(tmp_path, monkeypatch, HEAD + "spec:\n  meshConfig:\n    defaultConfig:\n      proxyStatsMatcher:\n"
                      "        exclusionRegexps: ['.*_bucket']\n")
    with pytest.raises(ConfigError) as caught:
        proxy_stats_inclusion("dev")
    assert caught.value.file == str(path)
    assert caught.value.field == "spec.meshConfig.defaultConfig.proxyStatsMatcher.exclusionRegexps"
    assert "inclusion matchers only" in str(caught.value)


def test_a_matcher_that_is_not_a_list_of_strings_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _istio_dir(tmp_path, monkeypatch, HEAD + "spec:\n  meshConfig:\n    defaultConfig:\n      proxyStatsMatcher:\n"
               "        inclusionPrefixes: cluster.outbound\n")
    with pytest.raises(ConfigError, match="expected a list of non-empty strings") as caught:
        proxy_stats_inclusion("dev")
    assert caught.value.field == "spec.meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes"


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(ConfigError, match="no Istio profile 'staging'; known: dev, prod"):
        proxy_stats_inclusion("staging")
