"""The SLO value objects: an `Slo` as declared, a `SloResult` per phase, a `Breach` seen during chaos."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

Phase = Literal["baseline", "chaos", "recovery"]
Comparator = Literal[">=", ">", "<=", "<"]
Template = Literal["availability", "latency", "error_ratio"]
Source = Literal["mesh", "client"]
Reporter = Literal["source", "destination"]
Verdict = Literal["pass", "fail", "no_data", "error"]

PHASES: tuple[Phase, ...] = ("baseline", "chaos", "recovery")
"""A run's phases in order: the one definition (run/session.py, report/rundata.py use it)."""
DEFAULT_SLO_FILE = Path(__file__).resolve().parents[2] / "slos" / "default.yaml"
"""The SLO file a run and the chaos probe use when an experiment names none."""
COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
TEMPLATES: tuple[Template, ...] = ("availability", "latency", "error_ratio")
SOURCES: tuple[Source, ...] = ("mesh", "client")
REPORTERS: tuple[Reporter, ...] = ("source", "destination")

# (required, optional) parameters of each template, per source. Mesh SLOs select Istio series by
# destination_service_name (and reporter); client SLOs select Locust samples by tier and request name.
TEMPLATE_PARAMS: dict[tuple[Source, Template], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("mesh", "availability"): (("service",), ("reporter",)),
    ("mesh", "error_ratio"): (("service",), ("reporter",)),
    ("mesh", "latency"): (("service", "quantile"), ("reporter",)),
    ("client", "availability"): ((), ("tier", "request")),
    ("client", "error_ratio"): ((), ("tier", "request")),
    ("client", "latency"): (("quantile",), ("tier", "request")),
}
PARAMETERS: tuple[str, ...] = ("service", "reporter", "quantile", "tier", "request")


@dataclass(frozen=True, kw_only=True)
class Slo:
    """One service level objective; build it with `parse_slo` or `load_slo_file`, which validate it."""

    name: str
    objective: float  # ratio 0..1 for availability/error_ratio, milliseconds for latency
    comparator: Comparator  # value <comparator> objective must hold for a pass
    query: str | None = None  # raw PromQL yielding one number; `$window`, `$service` substituted
    template: Template | None = None
    service: str | None = None  # destination_service_name, e.g. "ai-agent-service"
    reporter: Reporter = "source"  # whose view: the caller's sidecar/gateway or the callee's
    quantile: float | None = None  # latency template only, 0 < q < 1
    tier: str | None = None  # client only: the `tier` column of the samples, e.g. "premium"
    request: str | None = None  # client only: the `name` column of the samples (Locust request name)
    phases: tuple[Phase, ...] = PHASES
    abort_on_breach: bool = False  # a breach seen while chaos runs stops the chaos early
    settle_s: float = 0.0  # the chaos window opens this long after chaos starts: a bounded recovery time
    description: str = ""
    source: Source = "mesh"  # mesh: Prometheus; client: the load generator's per-request samples
    file: str | None = None  # where it was declared, so later errors can name the file ...
    field: str = "slo"  # ... and the field path, e.g. "slos[2]"

    def holds(self, value: float) -> bool:
        """True when `value` meets the objective; NaN never does."""
        return not math.isnan(value) and COMPARATORS[self.comparator](value, self.objective)


@dataclass(frozen=True, kw_only=True)
class SloResult:
    """One SLO evaluated over one phase window; `no_data` and `error` are never a pass."""

    name: str
    phase: Phase
    query: str  # the PromQL sent, or a description of the client-side computation
    value: float | None  # None when there was no data or an error
    objective: float
    comparator: Comparator
    verdict: Verdict
    window_start: float  # epoch seconds, exclusive
    window_end: float  # epoch seconds, inclusive; the query's evaluation time
    source: Source
    detail: str = ""  # why no_data/error, or how many samples a client value came from

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True, kw_only=True)
class Breach:
    """The first breach of an abort_on_breach SLO seen while chaos ran."""

    result: SloResult
    seen_at: float  # epoch seconds (by the watch's clock) of the poll that saw it
