"""Specifications of harness.tracing: run > experiment > phase > activity spans, the traceparent Locust gets,
and an SDK only when OTEL_EXPORTER_OTLP_ENDPOINT asks for one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import harness.tracing as tracing

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})")
KILL = {"type": "action", "name": "kill-pods",
        "provider": {"type": "python", "module": "harness.chaos.actions", "func": "kill_pods"}}


def named(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_run_experiment_phase_and_activity_spans_nest_in_one_trace(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with tracing.run_span("ai-agent v1 pods killed", tmp_path):
        with tracing.experiment_span("ai-agent v1 pods killed"):
            tracing.enter_phase("baseline")
            tracing.enter_phase("chaos")
            activity = dict(KILL)
            tracing.start_activity(activity)
            tracing.end_activity(activity, {"status": "succeeded"})
            tracing.enter_phase("recovery")
        tracing.record_exit_code(0)

    found = named(spans)
    assert set(found) == {"harness run", "experiment", "phase baseline", "phase chaos", "phase recovery",
                          "activity kill-pods"}
    run, experiment = found["harness run"], found["experiment"]
    assert parent_of(experiment) == run.context.span_id
    for phase in ("baseline", "chaos", "recovery"):
        assert parent_of(found[f"phase {phase}"]) == experiment.context.span_id
        assert found[f"phase {phase}"].attributes["harness.phase"] == phase
    assert parent_of(found["activity kill-pods"]) == found["phase chaos"].context.span_id
    assert found["activity kill-pods"].attributes["chaos.activity.function"] == "harness.chaos.actions.kill_pods"
    assert {span.context.trace_id for span in found.values()} == {run.context.trace_id}
    assert run.attributes["harness.run_dir"] == str(tmp_path) and run.attributes["harness.exit_code"] == 0


def test_the_phase_traceparent_is_w3c_and_carries_the_phase_trace_and_span_ids(spans: InMemorySpanExporter,
                                                                             tmp_path: Path) -> None:
    with tracing.run_span("latency", tmp_path):
        tracing.enter_phase("warmup")
        parent = tracing.traceparent_for_phase()
        environment = tracing.locust_environment()
        run_trace = tracing.trace_id()

    match = TRACEPARENT.fullmatch(parent)
    assert match, parent
    warmup = named(spans)["phase warmup"]
    assert match["trace"] == f"{warmup.context.trace_id:032x}" == run_trace
    assert match["span"] == f"{warmup.context.span_id:016x}"
    assert int(match["flags"], 16) & 0x01  # sampled, so the mesh records the requests too
    assert environment == {"HARNESS_TRACEPARENT": parent} and tracing.TRACEPARENT_ENV == "HARNESS_TRACEPARENT"


def test_each_phase_hands_out_its_own_span_in_the_runs_trace(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with tracing.run_span("canary", tmp_path):
        with tracing.phase_span("baseline"):
            baseline = tracing.traceparent_for_phase()
        with tracing.phase_span("chaos"):
            chaos = tracing.traceparent_for_phase()
    assert baseline.split("-")[1] == chaos.split("-")[1]
    assert baseline.split("-")[2] != chaos.split("-")[2]


def test_activity_spans_made_as_blocks_sit_under_the_current_phase(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with tracing.run_span("abort", tmp_path):
        with tracing.phase_span("chaos"):
            with tracing.activity_span("inject-abort", service="analytics"):
                pass
    found = named(spans)
    assert parent_of(found["activity inject-abort"]) == found["phase chaos"].context.span_id
    assert found["activity inject-abort"].attributes["service"] == "analytics"


def test_a_failed_activity_marks_its_span_as_an_error_with_the_last_line_of_its_exception(
        spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with tracing.run_span("failover", tmp_path):
        tracing.enter_phase("chaos")
        activity = dict(KILL)
        tracing.start_activity(activity)
        tracing.end_activity(activity, {"status": "failed",
                                        "exception": ["Traceback ...\n", "ActivityFailed: no pod matches\n"]})
    span = named(spans)["activity kill-pods"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ActivityFailed: no pod matches"
    assert span.attributes["chaos.activity.status"] == "failed"


def test_an_interrupted_run_still_ends_its_open_phase_and_activity_spans(spans: InMemorySpanExporter,
                                                                       tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with tracing.run_span("pod kill", tmp_path):
            tracing.enter_phase("chaos")
            tracing.start_activity(dict(KILL))
            raise KeyboardInterrupt
    assert {"harness run", "phase chaos", "activity kill-pods"} <= set(named(spans))
    assert tracing.traceparent_for_phase() == ""  # nothing left open for the next run


def test_exit_2_marks_the_run_span_as_an_error(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with tracing.run_span("broken", tmp_path):
        tracing.record_exit_code(2)
    assert named(spans)["harness run"].status.status_code is StatusCode.ERROR


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (the global tracer provider can be set once per process)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT"))}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=30)


def test_no_sdk_is_configured_when_the_otlp_endpoint_is_unset_and_spans_cost_nothing() -> None:
    done = python("""
        from opentelemetry import trace
        import harness.tracing as tracing
        assert tracing.configure_tracing() is False
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        with tracing.run_span("pod kill", "/tmp/run"):
            tracing.enter_phase("baseline")
            assert tracing.traceparent_for_phase() == "" and tracing.locust_environment() == {}
            assert tracing.trace_id() is None
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(("protocol", "module"), [("", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
                                                  ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter")])
def test_the_otlp_endpoint_installs_the_sdk_with_an_otlp_exporter(protocol: str, module: str) -> None:
    done = python("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import harness.tracing as tracing
        assert tracing.configure_tracing() is True
        assert tracing.configure_tracing() is True  # twice is harmless
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        import sys
        exporters = [m for m in sys.modules if m.startswith("opentelemetry.exporter.otlp.proto.")
                     and m.endswith(".trace_exporter")]
        print(*exporters, provider.resource.attributes["service.name"])
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [module, "mesh-resilience-harness"]  # that exporter and no other


def test_a_missing_sdk_or_exporter_names_the_otlp_extra_to_install() -> None:
    done = python("""
        import sys
        sys.modules["opentelemetry.exporter.otlp.proto.http.trace_exporter"] = None  # as if not installed
        import harness.tracing as tracing
        from harness.errors import MissingDependencyError
        try:
            tracing.configure_tracing()
        except MissingDependencyError as exc:
            print(exc)
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    assert "pip install 'mesh-resilience-harness[otlp]'" in done.stdout
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in done.stdout


def test_an_unknown_otlp_protocol_is_a_config_error_naming_the_variable() -> None:
    done = python("""
        import harness.tracing as tracing
        from harness.errors import ConfigError
        try:
            tracing.configure_tracing()
        except ConfigError as exc:
            print(exc)
    """, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="carrier-pigeon")
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in done.stdout and "carrier-pigeon" in done.stdout, done.stderr


def test_a_traceparent_from_ci_parents_the_run() -> None:
    done = python("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import harness.tracing as tracing
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with tracing.run_span("pod kill", "/tmp/run"):
            pass
        (run,) = exporter.get_finished_spans()
        print(f"{run.context.trace_id:032x} {run.parent.span_id:016x}")
    """, TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"]


def test_the_public_surface_is_one_sorted_all() -> None:
    assert tracing.__all__ == sorted(tracing.__all__)
    public = {n for n, v in vars(tracing).items() if callable(v) and not n.startswith("_")
              and getattr(v, "__module__", "") == tracing.__name__}
    assert public <= set(tracing.__all__)


def test_locust_requests_join_the_trace_the_harness_hands_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """locustfiles/ai_agent.py: with HARNESS_TRACEPARENT every request's traceparent carries that trace id."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).parents[2] / "locustfiles"
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    monkeypatch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")  # gevent must not patch the test process
    monkeypatch.setenv("HARNESS_TRACEPARENT", f"00-{trace_id}-00f067aa0ba902b7-01")
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location("ai_agent_traced", folder / "ai_agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    headers = {module._traceparent() for _ in range(5)}
    assert all(h.startswith(f"00-{trace_id}-") and h.endswith("-01") for h in headers)
    assert len({h.split("-")[2] for h in headers}) == 5  # a new span id per request
    sys.modules.pop("ai_agent_traced", None)
