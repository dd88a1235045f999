"""Traces of harness runs through opentelemetry-api: run, experiment, phase and activity spans.

The harness talks only to the OpenTelemetry API (tracer "harness"); with no SDK installed every span
is a no-op. `configure_tracing()` installs the SDK with an OTLP exporter only when the user sets the
standard OTEL_EXPORTER_OTLP_ENDPOINT (the SDK and exporter come with the `otlp` extra).

Spans nest as run > experiment > phase > activity. Phases and activities start and end in different
Chaos Toolkit control hooks, so besides the context managers there are start/end calls that keep the
open spans here, one run per process at a time (as harness.run.control keeps its session):

    cli.main                  configure_tracing()
    run.runner.run_file       with run_span(title, run_dir): ...   record_exit_code(code)
                              with experiment_span(title): run_experiment(...)
    run.session.enter         enter_phase(phase)
    run.control               start_activity(context) / end_activity(context, state)
    run.evaluation.start_load extra_env = {**load.env, **locust_environment()}

Locust gets the current phase's W3C traceparent in HARNESS_TRACEPARENT and sends every request in
that trace (with a random span id of its own), so the mesh's spans join the run's trace.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from harness.errors import ConfigError, ExitCode, MissingDependencyError

if TYPE_CHECKING:
    from opentelemetry.context import Context

TRACER_NAME = "harness"
TRACEPARENT_ENV = "HARNESS_TRACEPARENT"
"""The environment variable that hands the current phase's traceparent to the Locust processes."""
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
INSTALL_HINT = "pip install 'mesh-resilience-harness[otlp]'"
PROTOCOLS = ("http/protobuf", "grpc")  # OTEL_EXPORTER_OTLP_PROTOCOL; the spec's default comes first
SERVICE_NAME = "mesh-resilience-harness"  # OTEL_SERVICE_NAME overrides it


@dataclass
class _OpenSpans:
    run: Span | None = None
    experiment: Span | None = None
    phase: Span | None = None
    activities: dict[int, Span] = field(default_factory=dict)  # by id() of the activity dict


_lock = threading.RLock()
_open = _OpenSpans()
_configured = False


def _tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# -- configuration -----------------------------------------------------------------------------------


def configure_tracing(environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK with an OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-only
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; True when spans are exported.

    Unset: nothing is installed and every span stays a no-op. A tracer provider installed by someone
    else (e.g. `opentelemetry-instrument harness ...`) is left alone. The exporter reads the other
    standard OTEL_EXPORTER_OTLP_* variables itself (headers, timeout, certificate).
    """
    global _configured
    env = os.environ if environ is None else environ
    if not (env.get(ENDPOINT_ENV) or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    with _lock:
        if _configured or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return True
        provider = _sdk_provider(env)
        trace.set_tracer_provider(provider)
        _configured = True
    return True


def _sdk_provider(env: Mapping[str, str]) -> Any:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or PROTOCOLS[0]
    if protocol not in PROTOCOLS:
        raise ConfigError(f"expected one of {', '.join(PROTOCOLS)}, got {protocol!r}",
                          field="OTEL_EXPORTER_OTLP_PROTOCOL")
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise MissingDependencyError(
            f"{ENDPOINT_ENV} is set, so traces would be exported over OTLP ({protocol}), but the "
            f"OpenTelemetry SDK or OTLP exporter is not installed ({exc.name or exc}): {INSTALL_HINT}, "
            f"or unset {ENDPOINT_ENV}"
        ) from exc
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)  # flushes and shuts down at interpreter exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


# -- run and experiment ----------------------------------------------------------------------------


def _inherited_context() -> Context | None:
    """A TRACEPARENT in the environment (as CI tracing plugins and otel-cli set it) parents the run."""
    parent = os.environ.get("TRACEPARENT")
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": parent})


@contextlib.contextmanager
def run_span(experiment_title: str, run_dir: Path | str, **attributes: Any) -> Iterator[Span]:
    """The whole `harness run` of one experiment; current for its duration. Ends whatever phase or
    activity span is still open when it ends (an interrupted run)."""
    attrs = {"harness.experiment.title": experiment_title, "harness.run_dir": str(run_dir), **attributes}
    parent = _inherited_context() if trace.get_current_span() is trace.INVALID_SPAN else None
    with _tracer().start_as_current_span("harness run", context=parent, kind=SpanKind.INTERNAL,
                                         attributes=_clean(attrs)) as span:
        with _lock:
            previous, _open.run = _open.run, span
        try:
            yield span
        finally:
            with _lock:
                _end_activities()
                _end(_open.phase)
                _open.phase = None
                _open.run = previous


@contextlib.contextmanager
def experiment_span(title: str) -> Iterator[Span]:
    """Chaos Toolkit running the experiment (hypothesis, method, rollbacks), inside the run span."""
    with _tracer().start_as_current_span("experiment", context=_parent_context(),
                                         attributes={"harness.experiment.title": title}) as span:
        with _lock:
            previous, _open.experiment = _open.experiment, span
        try:
            yield span
        finally:
            with _lock:  # a phase still open belongs to this experiment (evaluation, or an interrupt)
                _end_activities()
                _end(_open.phase)
                _open.phase = None
                _open.experiment = previous


def record_exit_code(exit_code: int) -> None:
    """The run's verdict on the run span; exit 2 (invalid input or harness error) marks it an error."""
    with _lock:
        span = _open.run
    if span is None:
        return
    span.set_attribute("harness.exit_code", exit_code)
    if exit_code == ExitCode.INVALID:
        span.set_status(Status(StatusCode.ERROR, "invalid input or harness error"))


def trace_id() -> str | None:
    """The current run's trace id in hex (for the journal), or None when spans are not recorded."""
    with _lock:
        span = _open.run
    context = span.get_span_context() if span is not None else trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


# -- phases ----------------------------------------------------------------------------------------


def enter_phase(name: str) -> Span:
    """End the current phase span, if any, and start `name`'s under the experiment (or run) span."""
    with _lock:
        _end(_open.phase)
        _open.phase = _tracer().start_span(f"phase {name}", context=_parent_context(include_phase=False),
                                           attributes={"harness.phase": name})
        return _open.phase


def end_phase() -> None:
    with _lock:
        _end(_open.phase)
        _open.phase = None


@contextlib.contextmanager
def phase_span(name: str) -> Iterator[Span]:
    """One phase as a block: `with phase_span("baseline"): ...`."""
    span = enter_phase(name)
    try:
        with trace.use_span(span, end_on_exit=False):
            yield span
    finally:
        with _lock:
            if _open.phase is span:
                end_phase()


def traceparent_for_phase() -> str:
    """The W3C traceparent of the current phase span (else the run's): `00-<trace id>-<span id>-<flags>`.

    Empty when nothing is recorded (no SDK configured), so Locust keeps its own fresh traces."""
    with _lock:
        span = _open.phase or _open.experiment or _open.run
    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def locust_environment() -> dict[str, str]:
    """What to add to the Locust processes' environment: the phase's traceparent, when there is one."""
    parent = traceparent_for_phase()
    return {TRACEPARENT_ENV: parent} if parent else {}


# -- activities ------------------------------------------------------------------------------------


def _activity_attributes(activity: Mapping[str, Any]) -> dict[str, Any]:
    provider = activity.get("provider") or {}
    function = ".".join(str(p) for p in (provider.get("module"), provider.get("func")) if p)
    return _clean({"chaos.activity.name": activity.get("name"), "chaos.activity.type": activity.get("type"),
                   "chaos.activity.provider": provider.get("type"), "chaos.activity.function": function or None})


def start_activity(activity: Mapping[str, Any]) -> Span:
    """From before_activity_control: a span for this activity (keyed by the dict Chaos Toolkit passes
    to both hooks, so activities running in the background each get their own)."""
    with _lock:
        span = _tracer().start_span(f"activity {activity.get('name', '?')}", context=_parent_context(),
                                    attributes=_activity_attributes(activity))
        _end(_open.activities.pop(id(activity), None))
        _open.activities[id(activity)] = span
        return span


def end_activity(activity: Mapping[str, Any], run: Mapping[str, Any] | None = None) -> None:
    """From after_activity_control with its `state` (the activity's run record): status and end."""
    with _lock:
        span = _open.activities.pop(id(activity), None)
    if span is None:
        return
    if run:
        status = run.get("status")
        if status:
            span.set_attribute("chaos.activity.status", str(status))
        if status == "failed":
            lines = [line for line in "".join(run.get("exception") or []).strip().splitlines() if line]
            span.set_status(Status(StatusCode.ERROR, lines[-1] if lines else "the activity failed"))
    span.end()


@contextlib.contextmanager
def activity_span(name: str, **attributes: Any) -> Iterator[Span]:
    """One activity as a block, under the current phase: `with activity_span("kill-pods"): ...`."""
    with _tracer().start_as_current_span(f"activity {name}", context=_parent_context(),
                                         attributes=_clean({"chaos.activity.name": name, **attributes})) as span:
        yield span


# -- internals -------------------------------------------------------------------------------------


def _parent_context(*, include_phase: bool = True) -> Context | None:
    """Explicit parents: phase, else experiment, else run, else whatever is current."""
    parent = (_open.phase if include_phase else None) or _open.experiment or _open.run
    return trace.set_span_in_context(parent) if parent is not None else None


def _end(span: Span | None) -> None:
    if span is not None and span.is_recording():
        span.end()


def _end_activities() -> None:
    for span in _open.activities.values():
        _end(span)
    _open.activities.clear()


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes take str, bool, int, float (or lists of them), never None."""
    return {k: v if isinstance(v, (str, bool, int, float)) else str(v) for k, v in attributes.items() if v is not None}


__all__ = [
    "ENDPOINT_ENV",
    "INSTALL_HINT",
    "TRACEPARENT_ENV",
    "TRACER_NAME",
    "activity_span",
    "configure_tracing",
    "end_activity",
    "end_phase",
    "enter_phase",
    "experiment_span",
    "locust_environment",
    "phase_span",
    "record_exit_code",
    "run_span",
    "start_activity",
    "trace_id",
    "traceparent_for_phase",
]
