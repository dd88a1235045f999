"""A run directory read into typed records: verdict, phases, fault windows, pod kills, SLO results, samples."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, ExitCode, verdict_word
from harness.pathcheck import checked_path
from harness.report.journal_check import check_journal
from harness.slo.model import PHASES

if TYPE_CHECKING:
    import pandas as pd

JOURNAL = "journal.json"
SAMPLES_CSV = "samples.csv"
SAMPLES_PARQUET = "samples.parquet"
_SERVICE = re.compile(r'destination_service_name="([^"]+)"')
_TIER = re.compile(r"\btier=([\w.-]+)")


@dataclass(frozen=True, kw_only=True)
class FaultWindow:
    """One fault as the run recorded it, with the window it was in effect (epoch seconds)."""

    kind: str  # kill | delay | abort | region | scale
    target: str  # a pod (kill), a service host (delay, abort, scale) or a region
    details: Mapping[str, Any]
    start: float  # applied_at, else requested_at
    end: float  # reverted_at; for a kill the pod's recovery; else the end of the chaos phase
    requested_at: float
    applied_at: float | None = None
    reverted_at: float | None = None
    inject_latency_ms: float | None = None
    revert_latency_ms: float | None = None
    visible_after_ms: float | None = None
    errors_until: float | None = None

    @property
    def label(self) -> str:
        """A short name for plots and tables, e.g. "abort 503 50% user-service"."""
        d = self.details
        if self.kind == "delay":
            return f"delay {d.get('delay_ms', '?')} ms {_pct(d)}{self.target}"
        if self.kind == "abort":
            return f"abort {d.get('http_status', '?')} {_pct(d)}{self.target}"
        if self.kind == "scale":
            return f"scale {self.target} to {d.get('replicas', '?')}"
        if self.kind == "region":
            return f"region {self.target} down"
        return f"{self.kind} {self.target}"

    def overlaps(self, start: float, end: float) -> bool:
        """True when the fault was in effect at some time within (start, end]."""
        return self.start < end and self.end > start


@dataclass(frozen=True, kw_only=True)
class PodKill:
    """A pod the chaos killed and when the platform saw it ready again."""

    pod: str
    killed_at: float
    recovered_at: float | None
    recovery_s: float | None


@dataclass(frozen=True, kw_only=True)
class SloRow:
    """One SLO judged over one phase, as `harness run` wrote it (harness.slo.SloResult as a record)."""

    name: str
    phase: str
    query: str
    value: float | None
    objective: float
    comparator: str
    verdict: str  # pass | fail | no_data | error
    window_start: float
    window_end: float
    source: str  # mesh | client
    detail: str = ""

    @property
    def service(self) -> str | None:
        """The destination service a mesh SLO's query selects, if it names one."""
        match = _SERVICE.search(self.query)
        return match.group(1) if match else None

    @property
    def tier(self) -> str | None:
        """The tier a client SLO selects ("where tier=premium"), if any."""
        match = _TIER.search(self.query) if self.source == "client" else None
        return match.group(1) if match else None

    @property
    def kind(self) -> str:
        """latency, availability, error_ratio or other: what the value measures."""
        if "histogram_quantile" in self.query or "latency_ms" in self.query:
            return "latency"
        if self.comparator in (">=", ">") and 0 < self.objective <= 1:
            return "availability"
        if self.comparator in ("<=", "<") and 0 <= self.objective <= 1:
            return "error_ratio"
        return "other"

    @property
    def breached(self) -> bool:
        return self.verdict in ("fail", "no_data")


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """Everything the reports need from one run directory."""

    run_dir: Path
    title: str
    exit_code: int
    status: str
    deviated: bool
    has_hypothesis: bool
    platform: str
    phases: Mapping[str, tuple[float, float]]  # only phases that both started and ended
    faults: tuple[FaultWindow, ...]
    kills: tuple[PodKill, ...]
    slos: tuple[SloRow, ...]
    reason: str  # why the verdict, beyond the SLO table ("" when the SLOs say it all)
    journal: Mapping[str, Any] = field(repr=False)

    @property
    def verdict(self) -> str:
        """PASS, FAIL, ERROR, INCONCLUSIVE or INTERRUPTED, from the exit code."""
        return verdict_word(self.exit_code)

    @property
    def origin(self) -> float:
        """Time zero of plots and relative times: the baseline start, else the earliest phase or fault, else
        the journal's start."""
        if "baseline" in self.phases:
            return self.phases["baseline"][0]
        starts = [start for start, _ in self.phases.values()] + [f.start for f in self.faults]
        if starts:
            return min(starts)
        try:
            return dt.datetime.fromisoformat(str(self.journal.get("start"))).timestamp()
        except ValueError:
            return 0.0

    @property
    def span(self) -> tuple[float, float] | None:
        """From the first phase start to the last phase end, or None without phases."""
        if not self.phases:
            return None
        return min(s for s, _ in self.phases.values()), max(e for _, e in self.phases.values())


def read_journal(run_dir: Path) -> dict[str, Any]:
    """The run's journal.json; a missing or unreadable one is a ConfigError naming the file."""
    path = Path(run_dir) / JOURNAL
    checked_path(run_dir, field="RUN_DIR")
    if not Path(run_dir).is_dir():
        raise ConfigError("expected a run directory written by `harness run`, found no such directory", file=run_dir)
    if not path.is_file():
        raise ConfigError("expected the run's journal here; is this a run directory written by `harness run`?",
                          file=path)
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the journal: {exc}", file=path, field="(file)") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expected JSON, got an error at line {exc.lineno} column {exc.colno}: {exc.msg}",
                          file=path, field=f"line {exc.lineno}") from exc
    except (ValueError, RecursionError) as exc:  # an integer past 4300 digits; nesting deeper than Python's stack
        raise ConfigError(f"expected a journal of ordinary numbers and depth: {exc}", file=path,
                          field="(document)") from exc
    if not isinstance(journal, dict) or not isinstance(journal.get("experiment"), dict):
        raise ConfigError("expected a Chaos Toolkit journal: an object with an `experiment` object", file=path,
                          field="experiment")
    harness = journal.get("harness")
    if harness is not None and not isinstance(harness, dict):
        raise ConfigError(f"expected an object, got {type(harness).__name__}", file=path, field="harness")
    check_journal(journal, path)
    return journal


def read_run(run_dir: Path) -> RunRecord:
    """Read journal.json of a run directory into a RunRecord."""
    run_dir = Path(run_dir)
    journal = read_journal(run_dir)
    harness = journal.get("harness") or {}
    path = run_dir / JOURNAL
    try:
        phases = _phases(harness.get("phases") or {})
        chaos_end = phases.get("chaos", (0.0, max((e for _, e in phases.values()), default=0.0)))[1]
        kills = tuple(PodKill(pod=k["pod"], killed_at=float(k["killed_at"]), recovered_at=_num(k.get("recovered_at")),
                              recovery_s=_num(k.get("recovery_s")))
                      for k in (harness.get("chaos") or {}).get("pod_kills") or [])
        faults = tuple(_fault(f, kills, chaos_end) for f in (harness.get("chaos") or {}).get("faults") or [])
        slos = tuple(slo_row(r) for r in harness.get("slo_results") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"unexpected shape of the harness section: {type(exc).__name__}: {exc}", file=path,
                          field="harness") from exc
    code = _exit_code(journal, harness)
    return RunRecord(
        run_dir=run_dir, title=str(journal["experiment"].get("title") or run_dir.name), exit_code=code,
        status=str(journal.get("status") or harness.get("phase") or "unknown"), deviated=bool(journal.get("deviated")),
        has_hypothesis=bool(journal["experiment"].get("steady-state-hypothesis")),
        platform=str(harness.get("platform") or journal.get("platform") or "?"), phases=phases, faults=faults,
        kills=kills, slos=slos, reason=_reason(journal, harness, code), journal=journal,
    )  # fmt: skip


def read_samples(run_dir: Path) -> pd.DataFrame | None:
    """The run's per-request samples (samples.csv, else samples.parquet), or None when it has neither."""
    from harness.slo.client_side import load_samples

    run_dir = Path(run_dir)
    if (run_dir / SAMPLES_CSV).is_file():
        return load_samples(run_dir / SAMPLES_CSV)
    if (run_dir / SAMPLES_PARQUET).is_file():
        import pandas as pd

        try:
            return pd.read_parquet(run_dir / SAMPLES_PARQUET)
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"cannot read the samples: {exc}", file=run_dir / SAMPLES_PARQUET) from exc
    return None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _pct(details: Mapping[str, Any]) -> str:
    pct = details.get("percentage")
    return "" if pct is None or float(pct) == 100 else f"{float(pct):g}% "


def _phases(raw: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    phases = {}
    for name in PHASES:
        entry = raw.get(name) or {}
        if entry.get("start") is not None and entry.get("end") is not None:
            phases[name] = (float(entry["start"]), float(entry["end"]))
    return phases


def _fault(raw: Mapping[str, Any], kills: tuple[PodKill, ...], chaos_end: float) -> FaultWindow:
    requested = float(raw["requested_at"])
    start = _num(raw.get("applied_at")) or requested
    end = _num(raw.get("reverted_at"))
    if end is None and raw["kind"] == "kill":
        end = next((k.recovered_at for k in kills if k.pod == raw["target"] and k.killed_at >= start - 1.0
                    and k.recovered_at is not None), None)
    end = max(start, end if end is not None else chaos_end)
    return FaultWindow(
        kind=str(raw["kind"]), target=str(raw["target"]), details=dict(raw.get("details") or {}), start=start,
        end=end, requested_at=requested, applied_at=_num(raw.get("applied_at")),
        reverted_at=_num(raw.get("reverted_at")), inject_latency_ms=_num(raw.get("inject_latency_ms")),
        revert_latency_ms=_num(raw.get("revert_latency_ms")), visible_after_ms=_num(raw.get("visible_after_ms")),
        errors_until=_num(raw.get("errors_until")),
    )  # fmt: skip


def slo_row(raw: Mapping[str, Any]) -> SloRow:
    """One entry of the journal's harness.slo_results as an SloRow."""
    return SloRow(
        name=str(raw["name"]), phase=str(raw["phase"]), query=str(raw.get("query") or ""), value=_num(raw.get("value")),
        objective=float(raw["objective"]), comparator=str(raw["comparator"]), verdict=str(raw["verdict"]),
        window_start=float(raw["window_start"]), window_end=float(raw["window_end"]),
        source=str(raw.get("source") or "mesh"), detail=str(raw.get("detail") or ""),
    )  # fmt: skip


def _exit_code(journal: Mapping[str, Any], harness: Mapping[str, Any]) -> int:
    """The exit code `harness run` recorded; a journal without one did not finish (ERROR, or INTERRUPTED)."""
    if isinstance(harness.get("exit_code"), int):
        return int(harness["exit_code"])
    return ExitCode.INTERRUPTED if journal.get("status") == "interrupted" else ExitCode.INVALID


def _reason(journal: Mapping[str, Any], harness: Mapping[str, Any], code: int) -> str:
    if not harness:
        return "the journal has no harness section: it was not written by `harness run`"
    if harness.get("error"):
        return f"harness error: {harness['error']}"
    if not isinstance(harness.get("exit_code"), int):
        return f"the run did not finish (journal status {journal.get('status')!r}, phase {harness.get('phase')!r})"
    breach = harness.get("abort_on_breach")
    if isinstance(breach, dict) and breach.get("name"):
        value = "no data" if breach.get("value") is None else f"{float(breach['value']):.4g}"
        return (f"chaos stopped early: {breach['name']} breached ({value} against "
                f"{breach.get('comparator', '')} {breach.get('objective', '')})")
    if harness.get("interrupted_by"):
        return f"interrupted by {harness['interrupted_by']}"
    if harness.get("inconclusive"):
        return f"inconclusive: {harness['inconclusive']}"
    if code == 1 and journal.get("deviated"):
        return "the steady-state hypothesis deviated"
    return ""
