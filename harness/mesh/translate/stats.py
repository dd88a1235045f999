"""Envoy bootstrap stats settings that give native stats the labels the recording rules read."""

# The translator merges envoy_stats_bootstrap() into every sidecar and gateway bootstrap; the
# Prometheus recording rules (prometheus/recording-rules.yaml) depend on the cluster_name tag it
# defines. Checked against Envoy 1.40's /stats/prometheus output.

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.mesh.translate.tracing import COLLECTOR_CLUSTER

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


# Envoy's default histogram buckets (0.5, 1, 5, 10, 25, 50, 100, 250 ms ...) are too coarse for p99
# objectives in the tens of milliseconds; these are in ms like upstream_rq_time itself.
LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500,
                      750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000, 300000)


def envoy_stats_bootstrap(*, external_hosts: Sequence[str] = ()) -> dict[str, object]:
    """The bootstrap's top-level stats fields: `stats_config` and `stats_flush_interval`."""
    config = envoy_stats_config(external_hosts=external_hosts)
    config["histogram_bucket_settings"] = [
        {"match": {"safe_regex": {"regex": ".*"}}, "buckets": list(LATENCY_BUCKETS_MS)}
    ]
    # The trace collector's cluster is no mesh service: its ~250 cluster stats per proxy (1,750 series
    # with 7 proxies, 6% of job envoy's) served nothing. Istio's default proxy stats inclusion does not
    # export such a cluster either (istio.io "Envoy Statistics": only a small subset by default). Span
    # export itself stays visible in the tracer's own stats (tracing.opentelemetry.*).
    config["stats_matcher"] = {"exclusion_list": {"patterns": [{"prefix": f"cluster.{COLLECTOR_CLUSTER}."}]}}
    return {
        "stats_config": config,
        "stats_flush_interval": STATS_FLUSH_INTERVAL,
    }

