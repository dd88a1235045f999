"""SLOs: load SLO files, render their PromQL, judge them per phase from Prometheus or client samples."""

from harness.slo.client_side import COLUMNS, evaluate_samples, load_samples
from harness.slo.evaluate import evaluate, validate_slos, watch_for_breach
from harness.slo.loader import load_slo_file, parse_slo
from harness.slo.model import DEFAULT_SLO_FILE, PHASES, TEMPLATES, Breach, Slo, SloResult
from harness.slo.prometheus import PrometheusApi, PrometheusClient
from harness.slo.promql import prometheus_duration, render_promql

__all__ = [
    "Breach",
    "COLUMNS",
    "DEFAULT_SLO_FILE",
    "PHASES",
    "PrometheusApi",
    "PrometheusClient",
    "Slo",
    "SloResult",
    "TEMPLATES",
    "evaluate",
    "evaluate_samples",
    "load_samples",
    "load_slo_file",
    "parse_slo",
    "prometheus_duration",
    "render_promql",
    "validate_slos",
    "watch_for_breach",
]
