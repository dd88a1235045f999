"""Specifications of SLO files: what loads, and every bad input as a ConfigError naming file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.slo import PHASES, Slo, load_slo_file, parse_slo

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
slos:
  - name: ai-agent-availability
    template: availability
    service: ai-agent-service
    objective: 0.995
    comparator: ">="
  - name: ai-agent-p99
    template: latency
    service: ai-agent-service
    reporter: destination
    quantile: 0.99
    objective: 500
    comparator: "<="
    phases: [recovery, chaos]
    abort_on_breach: true
    description: p99 in ms
  - name: premium-availability
    source: client
    template: availability
    tier: premium
    objective: 0.999
    comparator: ">"
  - name: raw
    query: sum(rate(istio_requests_total{destination_service_name="$service"}[$window]))
    service: user-service
    objective: 1
    comparator: "<"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slos.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_file_loads_typed_slos_with_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)

    availability, latency, premium, raw = load_slo_file(path)

    assert availability == Slo(
        name="ai-agent-availability", template="availability", service="ai-agent-service", objective=0.995,
        comparator=">=", file=str(path), field="slos[0]",
    )  # fmt: skip
    assert availability.phases == PHASES and availability.source == "mesh" and availability.reporter == "source"
    assert not availability.abort_on_breach
    assert (latency.quantile, latency.reporter, latency.objective) == (0.99, "destination", 500.0)
    assert latency.phases == ("chaos", "recovery")  # in phase order, whatever order the file lists them
    assert latency.abort_on_breach and latency.description == "p99 in ms"
    assert (premium.source, premium.tier, premium.comparator) == ("client", "premium", ">")
    assert raw.query is not None and raw.template is None and raw.service == "user-service"


def test_the_shipped_default_slos_load() -> None:
    slos = load_slo_file(REPO / "slos" / "default.yaml")

    by_name = {slo.name: slo for slo in slos}
    assert by_name["ai-agent-availability"].objective == 0.995
    assert by_name["ai-agent-availability"].comparator == ">="
    assert by_name["ai-agent-latency-p99"].quantile == 0.99
    assert {slo.service for slo in slos if slo.source == "mesh"} >= {"ai-agent-service", "user-service", "analytics-service"}
    assert {slo.template for slo in slos if slo.source == "client"} == {"availability", "latency"}


@pytest.mark.parametrize("path", sorted((REPO / "slos").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_slo_file_loads(path: Path) -> None:
    assert load_slo_file(path)


_ONE = "slos:\n  - name: a\n    template: availability\n    service: ai-agent-service\n"

BAD = [
    pytest.param("slos: [\n  {name: a,\n", None, "invalid YAML at line 3", id="yaml_error_names_the_line"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: >=\n", None, 'quote comparators in YAML: comparator: ">="',
                 id="unquoted_comparator_gets_a_hint"),
    pytest.param(_ONE + "    objective: 0.9\n    objective: 0.8\n    comparator: '>='\n", None, "duplicate key 'objective'",
                 id="a_key_twice_is_an_error_not_last_wins"),
    pytest.param("- name: a\n", "slos", "expected a mapping with a list `slos:`", id="top_level_must_be_a_mapping"),
    pytest.param("slos: []\n", "slos", "expected a non-empty list", id="slos_must_not_be_empty"),
    pytest.param("slos: []\nversion: 2\n", "version", "unknown field 'version'", id="unknown_top_level_field"),
    pytest.param("slos:\n  - just-a-name\n", "slos[0]", "expected a mapping", id="an_slo_must_be_a_mapping"),
    pytest.param(_ONE + "    comparator: '>='\n", "slos[0].objective", "missing; expected a number", id="missing_objective"),
    pytest.param(_ONE + "    objective: 0.9\n", "slos[0].comparator", "expected one of '>=', '>', '<=', '<'",
                 id="missing_comparator"),
    pytest.param(_ONE.replace("  - name: a\n", "  -\n"), "slos[0].name", "missing; expected a string", id="missing_name"),
    pytest.param(_ONE.replace("name: a", "name: 'a b'") + "    objective: 0.9\n    comparator: '>='\n", "slos[0].name",
                 "expected letters, digits", id="name_with_a_space"),
    pytest.param(_ONE + "    objective: high\n    comparator: '>='\n", "slos[0].objective", "expected a number, got str 'high'",
                 id="objective_of_the_wrong_type"),
    pytest.param(_ONE + "    objective: true\n    comparator: '>='\n", "slos[0].objective", "expected a number, got bool",
                 id="objective_true_is_not_a_number"),
    pytest.param(_ONE + "    objective: 99.5\n    comparator: '>='\n", "slos[0].objective", "write 99.5% as 0.995",
                 id="availability_objective_is_a_ratio"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '=>'\n", "slos[0].comparator", "got '=>'", id="bad_comparator"),
    pytest.param(_ONE + "    objetive: 0.9\n", "slos[0].objetive", "unknown field; expected one of abort_on_breach",
                 id="unknown_field_lists_the_known_ones"),
    pytest.param(_ONE.replace("availability", "uptime"), "slos[0].template",
                 "expected one of 'availability', 'latency', 'error_ratio', got 'uptime'", id="unknown_template"),
    pytest.param("slos:\n  - name: a\n    objective: 1\n    comparator: '<'\n", "slos[0].template",
                 "expected exactly one of `query` (raw PromQL) or `template`", id="neither_query_nor_template"),
    pytest.param(_ONE + "    query: up\n    objective: 1\n    comparator: '<'\n", "slos[0].template", "exactly one of",
                 id="both_query_and_template"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n    phases: [baseline, chaso]\n", "slos[0].phases[1]",
                 "unknown phase 'chaso'; expected each of baseline, chaos, recovery", id="bad_phase"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n    phases: [chaos, chaos]\n", "slos[0].phases[1]",
                 "repeated phase 'chaos'", id="repeated_phase"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n    phases: chaos\n", "slos[0].phases",
                 "expected a non-empty list", id="phases_must_be_a_list"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n" + _ONE[6:] + "    objective: 0.9\n    comparator: '>='\n",
                 "slos[1].name", "duplicate name 'a' (slos[0] has it)", id="duplicate_name"),
    pytest.param("slos:\n  - name: a\n    template: latency\n    service: s\n    objective: 500\n    comparator: '<='\n",
                 "slos[0].quantile", "missing; template latency needs `quantile`", id="latency_without_quantile"),
    pytest.param("slos:\n  - name: a\n    template: availability\n    objective: 0.9\n    comparator: '>='\n",
                 "slos[0].service", "missing; template availability needs `service`", id="availability_without_service"),
    pytest.param(_ONE + "    quantile: 0.9\n    objective: 0.9\n    comparator: '>='\n", "slos[0].quantile",
                 "not a parameter of mesh template availability (its parameters: service, reporter)",
                 id="a_parameter_the_template_does_not_take"),
    pytest.param(_ONE + "    tier: premium\n    objective: 0.9\n    comparator: '>='\n", "slos[0].tier",
                 "not a parameter of mesh template", id="tier_is_only_for_client_slos"),
    pytest.param("slos:\n  - name: a\n    template: latency\n    service: s\n    quantile: 99\n    objective: 5\n"
                 "    comparator: '<='\n", "slos[0].quantile", "between 0 and 1 exclusive (0.99 for p99), got 99.0",
                 id="quantile_as_a_percentage"),
    pytest.param(_ONE + "    reporter: client\n    objective: 0.9\n    comparator: '>='\n", "slos[0].reporter",
                 "expected one of 'source', 'destination'", id="bad_reporter"),
    pytest.param("slos:\n  - name: a\n    source: client\n    query: up\n    objective: 1\n    comparator: '<'\n",
                 "slos[0].query", "expected a `template` for a client-side SLO", id="client_slo_with_promql"),
    pytest.param("slos:\n  - name: a\n    source: locust\n    template: availability\n    objective: 1\n    comparator: '<'\n",
                 "slos[0].source", "expected one of 'mesh', 'client'", id="bad_source"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n    abort_on_breach: yes please\n",
                 "slos[0].abort_on_breach", "expected true or false", id="abort_on_breach_must_be_a_bool"),
    pytest.param(_ONE + "    objective: 0.9\n    comparator: '>='\n    phases: [recovery]\n    abort_on_breach: true\n",
                 "slos[0].abort_on_breach", "phase chaos", id="abort_on_breach_needs_the_chaos_phase"),
    pytest.param("slos:\n  - name: a\n    query: sum(up{job=\"$service\"})\n    objective: 1\n    comparator: '<'\n",
                 "slos[0].service", "for $service in the query", id="dollar_service_needs_a_service"),
    pytest.param("slos:\n  - name: a\n    query: up\n    quantile: 0.5\n    objective: 1\n    comparator: '<'\n",
                 "slos[0].quantile", "not a parameter of a raw `query`", id="template_parameter_on_a_raw_query"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "field", "expected"), BAD)
def test_a_bad_slo_file_is_a_config_error_naming_file_field_and_expectation(
    tmp_path: Path, text: str, field: str | None, expected: str
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as error:
        load_slo_file(path)

    assert error.value.file == str(path)
    assert error.value.field == field
    assert expected in error.value.message
    assert str(path) in str(error.value) and (field is None or field in str(error.value))


def test_an_error_inside_an_slo_names_the_slo(tmp_path: Path) -> None:
    path = _write(tmp_path, _ONE + "    objective: 0.9\n    comparator: '=='\n")

    with pytest.raises(ConfigError, match=r"slos\[0\]\.comparator: .* \(SLO 'a'\)"):
        load_slo_file(path)


def test_a_missing_slo_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the SLO file") as error:
        load_slo_file(tmp_path / "nope.yaml")

    assert error.value.file == str(tmp_path / "nope.yaml")


def test_an_inline_slo_parses_with_its_own_field_path() -> None:
    raw = {"name": "p99", "template": "latency", "service": "user-service", "quantile": 0.5, "objective": 10,
           "comparator": "<"}  # fmt: skip

    assert parse_slo(raw, field="probe.arguments").quantile == 0.5
    with pytest.raises(ConfigError) as error:
        parse_slo({**raw, "objective": "fast"}, file="experiments/x.yaml", field="probe.arguments")
    assert (error.value.file, error.value.field) == ("experiments/x.yaml", "probe.arguments.objective")
