"""Before its load starts, a run waits for hosts an earlier run's faults got ejected, so its baseline never
measures them (Envoy outlier detection keeps a host out for baseEjectionTime times its ejections)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import InconclusiveError
from harness.run import evaluation

EJECTED = {"pod": "ai-agent-v1-us-east-0", "cluster_name": "outbound|8080|v1|user-service.parallel-ai.svc.cluster.local"}


class Gauge:
    """envoy_cluster_outlier_detection_ejections_active as Prometheus returns its raw samples: `ejected`
    for the first `polls` queries, then 0."""

    def __init__(self, polls: int, *, exported: bool = True) -> None:
        self.polls, self.exported, self.asked = polls, exported, 0

    def samples(self, selector: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        assert selector.startswith(evaluation.EJECTIONS)
        self.asked += 1
        if not self.exported:
            return []
        value = 1.0 if self.asked <= self.polls else 0.0
        return [(EJECTED, [(at - 1, value), (at, value)]), ({**EJECTED, "pod": "user-v1-us-east-0"}, [(at, 0.0)])]


@pytest.fixture
def gauge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gauge]:
    holder: dict[str, Gauge] = {}

    @contextlib.contextmanager
    def prometheus(platform: Any) -> Iterator[Gauge]:
        yield holder["gauge"]

    monkeypatch.setattr(evaluation, "prometheus", prometheus)
    monkeypatch.setattr(evaluation.time, "sleep", lambda s: None)  # the polls' pause, not what is judged
    yield holder  # type: ignore[misc]


def test_hosts_ejected_before_the_load_are_waited_for_and_recorded(gauge: Any) -> None:
    gauge["gauge"] = Gauge(polls=2)
    seen = evaluation.wait_for_ejections(platform=None)  # type: ignore[arg-type]
    assert gauge["gauge"].asked == 3 and seen["visible"] is True
    assert seen["ejected_at_start"] == [f"ai-agent-v1-us-east-0: {EJECTED['cluster_name']} (1)"]


def test_hosts_still_ejected_past_the_bound_make_the_run_inconclusive_naming_them(gauge: Any) -> None:
    gauge["gauge"] = Gauge(polls=10**6)
    with pytest.raises(InconclusiveError) as caught:
        evaluation.wait_for_ejections(platform=None, timeout_s=0.0)  # type: ignore[arg-type]
    assert "ai-agent-v1-us-east-0: outbound|8080|v1|user-service" in str(caught.value)
    assert "user-v1-us-east-0" not in str(caught.value)


def test_proxies_that_export_no_outlier_stats_are_said_to_be_unseen_not_clean(gauge: Any) -> None:
    gauge["gauge"] = Gauge(polls=0, exported=False)
    seen = evaluation.wait_for_ejections(platform=None)  # type: ignore[arg-type]
    assert seen == {"waited_s": seen["waited_s"], "ejected_at_start": [], "visible": False}
