"""The periods of a platform's telemetry pipeline: request -> proxy stats -> scrape -> recording rule.

Each platform says what its own pipeline runs on (`Platform.telemetry_pipeline()`); the run measures
the lag over it (harness/slo/lag.py) and sizes its probes and readiness window from these periods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConfigError

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class TelemetryPipeline:
    """Seconds between the runs of each stage a request's sample passes before an SLO query sees it."""

    stats_flush_s: float  # Envoy folds histograms into what it serves only at a stats flush
    scrape_s: float  # Prometheus's scrape interval for the proxies
    rule_s: float  # recording-rule evaluation interval; 0 when the SLO series are scraped as they are

    def __post_init__(self) -> None:
        for name in ("stats_flush_s", "scrape_s"):
            if not 0 < getattr(self, name) <= 300:
                raise ConfigError(f"expected 0 < {name} <= 300 s, got {getattr(self, name)}", field=name)
        if not 0 <= self.rule_s <= 300:
            raise ConfigError(f"expected 0 <= rule_s <= 300 s, got {self.rule_s}", field="rule_s")

    @property
    def period_s(self) -> float:
        """The longest stage period: probes spread over it meet every phase of the pipeline's cycle."""
        return max(self.stats_flush_s, self.scrape_s, self.rule_s)

    @property
    def bound_s(self) -> float:
        """How long a request can wait for the next flush, then the next scrape, then the next rule
        evaluation, when every stage runs on time (no processing time counted)."""
        return self.stats_flush_s + self.scrape_s + self.rule_s


def duration_s(text: str, *, field: str) -> float:
    """A Prometheus/Envoy duration as seconds: "1s", "2s", "500ms", "1.5s", "1m"."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        raise ConfigError(f"expected a duration such as 1s or 500ms, got {text!r}", field=field)
    return float(match.group(1)) * _UNIT_S[match.group(2)]
