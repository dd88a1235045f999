"""A small Prometheus HTTP API client for SLOs; the one place its failures become harness errors.

    connection refused, timeout, 5xx, not Prometheus   -> InconclusiveError (run exit 3)
    400 bad_data (the PromQL does not parse)            -> ConfigError with Prometheus's message
    422 execution error, several series, a range vector -> SloQueryError (the SLO's verdict "error")
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Protocol

import httpx

from harness.errors import ConfigError, InconclusiveError, SloQueryError


class PrometheusApi(Protocol):
    """What the SLO layer needs from Prometheus; `PrometheusClient` is the real one."""

    def query(self, promql: str, at: float) -> float | None: ...

    def validate(self, promql: str) -> None: ...


class PrometheusClient:
    """Instant queries against one Prometheus, e.g. `PrometheusClient("http://127.0.0.1:19090")`."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s  # per request; a slower Prometheus makes the run inconclusive
        # trust_env=False: Prometheus is on loopback; HTTP_PROXY/ALL_PROXY must not carry PromQL to a proxy.
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport, trust_env=False)

    def query(self, promql: str, at: float) -> float | None:
        """The one number `promql` yields at epoch second `at`; None for no series or NaN."""
        data = self._post(promql, at)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return _number(result[1])
        if kind != "vector" or not isinstance(result, list):
            raise SloQueryError(f"expected the query to yield one number, got a {kind}: {promql}")
        if not result:
            return None
        if len(result) > 1:
            labels = ", ".join(str(series.get("metric", {})) for series in result[:3])
            raise SloQueryError(
                f"expected the query to yield one number, got {len(result)} series ({labels}"
                f"{', ...' if len(result) > 3 else ''}); aggregate it, e.g. with sum(): {promql}"
            )
        return _number(result[0]["value"][1])

    def samples(self, selector: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """The raw samples a range selector (`metric{...}[30s]`) holds at epoch second `at`: one
        (labels, [(timestamp, value), ...]) per series, as stored (no rate, no extrapolation)."""
        data = self._post(selector, at)
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise SloQueryError(f"expected a range selector, got a {data.get('resultType')}: {selector}")
        return [(dict(series.get("metric", {})), [(float(t), float(v)) for t, v in series.get("values", [])])
                for series in data["result"]]

    def unscraped_targets(self) -> list[str]:
        """Active scrape targets Prometheus has not scraped yet (health "unknown"): a target it picked up
        but has not reached, which happens for ~5 s after Prometheus starts (its discovery tick)."""
        try:
            response = self._http.get("/api/v1/targets", params={"state": "active"})
            targets = response.json()["data"]["activeTargets"]
        except httpx.HTTPError as exc:
            raise InconclusiveError(f"Prometheus at {self.url} is unreachable: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InconclusiveError(f"{self.url} answered /api/v1/targets without a target list") from exc
        if not targets:  # discovery has not handed any target to the scrapers yet
            return ["(no active target yet)"]
        return [str(t.get("scrapeUrl", "?")) for t in targets if t.get("health") == "unknown"]

    def validate(self, promql: str) -> None:
        """Let Prometheus parse `promql` (an instant query at time 0, where there is no data)."""
        kind = self._post(promql, 0.0).get("resultType")
        if kind not in ("vector", "scalar"):
            raise ConfigError(
                f"expected a query that yields one number (an instant vector or a scalar), got a {kind}: {promql}",
                field="query",
            )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _post(self, promql: str, at: float) -> dict[str, Any]:
        try:
            response = self._http.post("/api/v1/query", data={"query": promql, "time": f"{at:.3f}"})
        except httpx.TimeoutException as exc:
            raise InconclusiveError(f"Prometheus at {self.url} did not answer within {self.timeout_s} s") from exc
        except httpx.HTTPError as exc:
            raise InconclusiveError(f"Prometheus at {self.url} is unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise InconclusiveError(
                f"{self.url} answered HTTP {response.status_code} without a Prometheus API body; is it Prometheus?"
            )
        if body["status"] == "success" and isinstance(body.get("data"), dict):
            return body["data"]
        message = f"{body.get('errorType', 'error')}: {body.get('error', '(no message)')}"
        if response.status_code == 400 and body.get("errorType") == "bad_data":
            raise ConfigError(f"Prometheus rejected the query ({message}): {promql}", field="query")
        if response.status_code == 422:
            raise SloQueryError(f"Prometheus could not evaluate the query ({message}): {promql}")
        raise InconclusiveError(f"Prometheus at {self.url} answered HTTP {response.status_code} ({message})")


def _number(text: Any) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value
