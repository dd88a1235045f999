"""Envoy bootstrap stats settings that give native stats the labels the recording rules read."""

# The translator merges envoy_stats_bootstrap() into every sidecar and gateway bootstrap; the
# Prometheus recording rules (prometheus/recording-rules.yaml) depend on the cluster_name tag it
# defines. Checked against Envoy 1.40's /stats/prometheus output.

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.mesh.translate.model import StatsInclusion

# Istio's own bootstrap regex: it captures cluster names up to `.svc.cluster.local`, so the dots of a
# Kubernetes FQDN do not end the name early.
ISTIO_CLUSTER_NAME_REGEX = r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"

# Envoy folds histograms into what the admin endpoint serves only when stats are flushed (default
# every 5 s); with 1 s the 1 s Prometheus scrape sees latency as fresh as counters.
STATS_FLUSH_INTERVAL = "1s"


def envoy_stats_config(*, external_hosts: Sequence[str] = ()) -> dict[str, object]:
    """The bootstrap `stats_config`: Envoy's default tags plus Istio's `cluster_name` tag.

    Istio's regex stops a non-Kubernetes host at its first dot: `outbound|443||api.openai.com`
    became `cluster_name="outbound|443||api"` and the rest leaked into the metric name
    (`envoy_cluster_openai_com_upstream_rq`). Hosts listed in `external_hosts` (ServiceEntry
    hosts) are matched whole first, which keeps them in `envoy_cluster_upstream_rq`.
    """
    regex = ISTIO_CLUSTER_NAME_REGEX
    if external_hosts:
        hosts = "|".join(re.escape(host) for host in sorted(set(external_hosts)))
        regex = rf"^cluster\.((outbound\|[0-9]+\|[^|]*\|(?:{hosts})|.+?(\..+?\.svc\.cluster\.local)?)\.)"
    return {
        "use_all_default_tags": True,
        "stats_tags": [{"tag_name": "cluster_name", "regex": regex}],
    }


# Envoy's default histogram buckets (Stats::HistogramSettingsImpl::defaultBuckets, which Istio's
# proxies use: 0.5, 1, 5, 10, 25, 50, 100, 250 ms ...) are too coarse for p99 objectives in the tens of
# milliseconds. The request duration gets these instead, in ms like the duration itself: every default
# bucket (so an Istio user's `le="2500"` exists here too) plus finer ones below 3 s. Only the request
# duration: every other histogram keeps the 19 defaults, as on an Istio proxy. The kind platform sets the
# same on every sidecar and the gateway with Istio's `sidecar.istio.io/statsHistogramBuckets` annotation
# (BUCKETS_ANNOTATION, on the Deployments' pod templates; a test keeps both equal).
LATENCY_HISTOGRAM = "istio.request_duration_milliseconds"
ENVOY_DEFAULT_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                            600000, 1800000, 3600000)
LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500,
                      750, 1000, 1500, 2000, 2500, 3000, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
BUCKETS_ANNOTATION = "sidecar.istio.io/statsHistogramBuckets"
ISTIO_LATENCY_PREFIX = "istiocustom.istio_request_duration_milliseconds"  # the stat on an Istio proxy


# What an Istio proxy exports whatever its ProxyConfig says (istio/istio pkg/bootstrap/config.go:
# v2Prefixes, requiredEnvoyStatsMatcherInclusionPrefixes, v2Suffix, rbacEnvoyStatsMatcherInclusionSuffix,
# requiredEnvoyStatsMatcherInclusionRegexes; istio.io "Envoy Statistics"). `istio` is the prefix of the
# standard metrics (translate/telemetry.py's stats scope); `downstream_cx_active` is added by Istio only
# for exitOnZeroActiveConnections, which nothing here sets.
ISTIO_INCLUSION = StatsInclusion(
    prefixes=("reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm",
              "component", "istio"),
    suffixes=("rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"),
    regexps=(r"vhost\..*\.route\..*",),
)

# What the local control plane reads, beyond Istio's: its push acknowledgements (platforms/local/acks.py:
# every subscription's version_text and refusal counters); istio-agent plays that part on kind. The
# ejection gauge a run reads comes with the profile's matchers on both platforms (mesh/profiles.py).
HARNESS_INCLUSION = StatsInclusion(regexps=(r".*\.(version_text|update_rejected|update_failure)",))


def stats_matcher(extra: StatsInclusion = StatsInclusion()) -> dict[str, object]:
    """Envoy's `stats_matcher` as Istio's bootstrap template writes it (an inclusion list: prefixes,
    suffixes, then regexps as safe_regex), from Istio's own, the harness's and the profile's matchers.

    Stats outside it are never created: they cost neither proxy memory nor Prometheus series. Istio's
    inclusion is the same for a sidecar and a gateway."""
    parts = (ISTIO_INCLUSION, HARNESS_INCLUSION, extra)
    patterns: list[dict[str, object]] = []
    for kind, values in (("prefix", [p for part in parts for p in part.prefixes]),
                         ("suffix", [s for part in parts for s in part.suffixes])):
        patterns += [{kind: value} for value in dict.fromkeys(values)]
    patterns += [{"safe_regex": {"regex": r}} for r in dict.fromkeys(r for part in parts for r in part.regexps)]
    return {"inclusion_list": {"patterns": patterns}}


def envoy_stats_bootstrap(*, external_hosts: Sequence[str] = (),
                          inclusion: StatsInclusion = StatsInclusion()) -> dict[str, object]:
    """The bootstrap's top-level stats fields: `stats_config` and `stats_flush_interval`.

    `inclusion` is the profile's meshConfig.defaultConfig.proxyStatsMatcher (mesh/profiles.py)."""
    config = envoy_stats_config(external_hosts=external_hosts)
    config["histogram_bucket_settings"] = [
        {"match": {"prefix": LATENCY_HISTOGRAM}, "buckets": list(LATENCY_BUCKETS_MS)}
    ]
    config["stats_matcher"] = stats_matcher(inclusion)
    return {
        "stats_config": config,
        "stats_flush_interval": STATS_FLUSH_INTERVAL,
    }
