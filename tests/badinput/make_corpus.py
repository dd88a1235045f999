"""Writes the bad-input corpus (tests/badinput/{experiments,slos,runs}); run it again after changing a case.

    .venv/bin/python tests/badinput/make_corpus.py

Each case is one data file (a run directory for `report`/`compare`) whose first line, or `expect.txt`,
says which field the error must name. The files are committed, so the corpus is data, not code:
test_bad_input.py only reads them. Cases are the ones issue 9 point 5 lists, plus the neighbours a
user hits next to them.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import yaml

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CONTROL = "controls[harness].provider.arguments"

BASE: dict[str, Any] = {
    "version": "1.0.0",
    "title": "a corpus experiment",
    "description": "valid until one field is broken",
    "tags": ["corpus"],
    "controls": [{"name": "harness", "provider": {"type": "python", "module": "harness.run.control", "arguments": {
        "load": {"locustfile": "locustfiles/ai_agent.py", "users": 5, "spawn_rate": 5, "think_time_s": [0.1, 0.3]},
        "slo_file": "slos/default.yaml", "slos": ["ai-agent-availability"], "warmup_s": 1, "baseline_s": 5,
        "recovery_s": 5}}}],
    "steady-state-hypothesis": {"title": "pods ready", "probes": [{
        "type": "probe", "name": "all-pods-ready", "tolerance": True,
        "provider": {"type": "python", "module": "harness.chaos.probes", "func": "all_pods_ready"}}]},
    "method": [{"type": "action", "name": "delay-user", "provider": {
        "type": "python", "module": "harness.chaos.actions", "func": "inject_delay",
        "arguments": {"service": "user", "delay_ms": 50, "percentage": 100}}},
        {"type": "action", "name": "kill-one", "provider": {
            "type": "python", "module": "harness.chaos.actions", "func": "kill_pods",
            "arguments": {"service": "ai-agent", "count": 1, "max_percent": 50}}}],
    "rollbacks": [{"type": "action", "name": "remove-faults", "provider": {
        "type": "python", "module": "harness.chaos.actions", "func": "remove_faults"}}],
}


def _args(e: dict[str, Any]) -> dict[str, Any]:
    return e["controls"][0]["provider"]["arguments"]


def _load(e: dict[str, Any]) -> dict[str, Any]:
    return _args(e)["load"]


def _delay(e: dict[str, Any]) -> dict[str, Any]:
    return e["method"][0]["provider"]["arguments"]


def _kill(e: dict[str, Any]) -> dict[str, Any]:
    return e["method"][1]["provider"]["arguments"]


def setter(where: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(e: dict[str, Any]) -> None:
        where(e)[key] = value
    return change


def deleter(where: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Callable[[dict[str, Any]], Any]:
    def change(e: dict[str, Any]) -> None:
        del where(e)[key]
    return change


def root(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    return setter(lambda e: e, key, value)


def replace_all(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda e: value


LOAD, DELAY, KILL = f"{CONTROL}.load", "method[0].provider.arguments", "method[1].provider.arguments"

# name -> (change to BASE, the field the error must name)
EXPERIMENTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "document-is-a-list": (lambda e: [e], "(document)"),
    "document-is-a-string": (replace_all("just a string"), "(document)"),
    "title-is-a-number": (root("title", 5), "title"),
    "provider-foo": (lambda e: e["method"][0].__setitem__("provider", "foo"), "method[0].provider"),
    "provider-type-missing": (lambda e: e["method"][0]["provider"].pop("type"), "method[0].provider.type"),
    "provider-type-unknown": (lambda e: e["method"][0]["provider"].__setitem__("type", "shell"), "method[0].provider.type"),
    "provider-module-number": (lambda e: e["method"][0]["provider"].__setitem__("module", 5), "method[0].provider.module"),
    "hypothesis-is-a-list": (root("steady-state-hypothesis", [{"title": "x"}]), "steady-state-hypothesis"),
    "hypothesis-probes-a-string": (lambda e: e["steady-state-hypothesis"].__setitem__("probes", "all"),
                                   "steady-state-hypothesis.probes"),
    "method-is-a-mapping": (root("method", {"type": "action", "name": "x"}), "method"),
    "method-holds-a-string": (root("method", ["kill everything"]), "method[0]"),
    "method-missing": (lambda e: e.pop("method"), "method"),
    "activity-name-missing": (lambda e: e["method"][0].pop("name"), "method[0].name"),
    "rollbacks-is-a-mapping": (root("rollbacks", {"name": "x"}), "rollbacks"),
    "controls-is-a-mapping": (root("controls", {"name": "harness"}), "controls"),
    "control-is-a-string": (root("controls", ["harness"]), "controls[0]"),
    "no-harness-control": (root("controls", []), "controls"),
    "activity-arguments-a-list": (lambda e: e["method"][0]["provider"].__setitem__("arguments", [1]),
                                  "method[0].provider.arguments"),
    "control-arguments-a-list": (lambda e: e["controls"][0]["provider"].__setitem__("arguments", [1]),
                                 "controls[0].provider.arguments"),
    "tags-a-string": (root("tags", "nightly"), "tags"),
    "id-with-a-slash": (root("id", "../etc"), "id"),
    "id-a-number": (root("id", 5), "id"),
    "unknown-control-argument": (setter(_args, "loadd", {}), CONTROL),
    "slo-file-a-number": (setter(_args, "slo_file", 5), f"{CONTROL}.slo_file"),
    "slo-file-with-nul": (setter(_args, "slo_file", "slos/default\0.yaml"), f"{CONTROL}.slo_file"),
    "slo-file-5000-char-name": (setter(_args, "slo_file", "s" * 5000 + ".yaml"), f"{CONTROL}.slo_file"),
    "slo-file-missing": (setter(_args, "slo_file", "slos/nowhere.yaml"), f"{CONTROL}.slo_file"),
    "slos-a-string": (setter(_args, "slos", "ai-agent-availability"), f"{CONTROL}.slos"),
    "slos-unknown-name": (setter(_args, "slos", ["no-such-slo"]), f"{CONTROL}.slos"),
    "slos-empty": (setter(_args, "slos", []), f"{CONTROL}.slos"),
    "load-a-list": (setter(_args, "load", ["locustfiles/ai_agent.py"]), f"{CONTROL}.load"),
    "load-missing-with-a-method": (deleter(_args, "load"), f"{CONTROL}.load"),
    "load-unknown-field": (setter(_load, "rate", 5), LOAD),
    "locustfile-a-number": (setter(_load, "locustfile", 5), f"{LOAD}.locustfile"),
    "locustfile-with-nul": (setter(_load, "locustfile", "locustfiles/ai\0agent.py"), f"{LOAD}.locustfile"),
    "locustfile-5000-char-name": (setter(_load, "locustfile", "l" * 5000 + ".py"), f"{LOAD}.locustfile"),
    "locustfile-missing": (setter(_load, "locustfile", "locustfiles/none.py"), f"{LOAD}.locustfile"),
    "locustfile-not-python": (setter(_load, "locustfile", "README.md"), f"{LOAD}.locustfile"),
    "users-1e9": (setter(_load, "users", 1_000_000_000), f"{LOAD}.users"),
    "users-1e9-float": (setter(_load, "users", 1e9), f"{LOAD}.users"),
    "users-zero": (setter(_load, "users", 0), f"{LOAD}.users"),
    "users-a-string": (setter(_load, "users", "ten"), f"{LOAD}.users"),
    "users-true": (setter(_load, "users", True), f"{LOAD}.users"),
    "spawn-rate-inf": (setter(_load, "spawn_rate", math.inf), f"{LOAD}.spawn_rate"),
    "spawn-rate-nan": (setter(_load, "spawn_rate", math.nan), f"{LOAD}.spawn_rate"),
    "spawn-rate-zero": (setter(_load, "spawn_rate", 0), f"{LOAD}.spawn_rate"),
    "spawn-rate-huge": (setter(_load, "spawn_rate", 1e9), f"{LOAD}.spawn_rate"),
    "think-time-reversed": (setter(_load, "think_time_s", [5, 1]), f"{LOAD}.think_time_s"),
    "think-time-nan": (setter(_load, "think_time_s", [math.nan, 1]), f"{LOAD}.think_time_s"),
    "think-time-a-number": (setter(_load, "think_time_s", 3), f"{LOAD}.think_time_s"),
    "think-time-three-values": (setter(_load, "think_time_s", [1, 2, 3]), f"{LOAD}.think_time_s"),
    "workers-33": (setter(_load, "workers", 33), f"{LOAD}.workers"),
    "workers-negative": (setter(_load, "workers", -1), f"{LOAD}.workers"),
    "shape-unknown": (setter(_load, "shape", "sawtooth"), f"{LOAD}.shape"),
    "env-a-list": (setter(_load, "env", ["A=1"]), f"{LOAD}.env"),
    "baseline-nan": (setter(_args, "baseline_s", math.nan), f"{CONTROL}.baseline_s"),
    "baseline-inf": (setter(_args, "baseline_s", math.inf), f"{CONTROL}.baseline_s"),
    "recovery-nan": (setter(_args, "recovery_s", math.nan), f"{CONTROL}.recovery_s"),
    "recovery-inf": (setter(_args, "recovery_s", math.inf), f"{CONTROL}.recovery_s"),
    "warmup-negative": (setter(_args, "warmup_s", -1), f"{CONTROL}.warmup_s"),
    "baseline-a-string": (setter(_args, "baseline_s", "10s"), f"{CONTROL}.baseline_s"),
    "percentage-200": (setter(_delay, "percentage", 200), f"{DELAY}.percentage"),
    "delay-negative": (setter(_delay, "delay_ms", -5), f"{DELAY}.delay_ms"),
    "delay-inf": (setter(_delay, "delay_ms", math.inf), f"{DELAY}.delay_ms"),
    "delay-nan": (setter(_delay, "delay_ms", math.nan), f"{DELAY}.delay_ms"),
    "delay-a-string": (setter(_delay, "delay_ms", "50ms"), f"{DELAY}.delay_ms"),
    "delay-unknown-service": (setter(_delay, "service", "nosuch"), f"{DELAY}.service"),
    "delay-unknown-argument": (setter(_delay, "delay", 50), f"{DELAY}.delay"),
    "max-percent-1000": (setter(_kill, "max_percent", 1000), f"{KILL}.max_percent"),
    "kill-count-zero": (setter(_kill, "count", 0), f"{KILL}.count"),
    "unknown-action": (lambda e: e["method"][0]["provider"].__setitem__("func", "explode"), "method[0].provider.func"),
}

# Raw text cases: (file name, text or bytes, field)
RAW_EXPERIMENTS: list[tuple[str, str | bytes, str]] = [
    ("deeply-nested.yaml", "title: x\nmethod: " + "[" * 3000 + "]" * 3000 + "\n", "(document)"),
    ("not-utf8.yaml", b"title: caf\xe9 latency\nmethod: []\n", "byte"),
    ("yaml-syntax-error.yaml", "title: [unclosed\nmethod: []\n", "line"),
    ("five-thousand-digit-version.yaml", "title: x\nversion: " + "9" * 5000 + "\nmethod: []\n", "(document)"),
]

SLO_BASE = {"name": "ai-agent-availability", "template": "availability", "service": "ai-agent-service",
            "objective": 0.995, "comparator": ">="}

SLOS: dict[str, tuple[Any, str]] = {
    "document-a-list": ([SLO_BASE], "slos"),
    "slos-a-mapping": ({"slos": SLO_BASE}, "slos"),
    "slos-empty": ({"slos": []}, "slos"),
    "entry-a-string": ({"slos": ["ai-agent-availability"]}, "slos[0]"),
    "objective-inf": ({"slos": [{**SLO_BASE, "template": "latency", "quantile": 0.99, "objective": math.inf,
                                 "comparator": "<="}]}, "slos[0].objective"),
    "objective-nan": ({"slos": [{**SLO_BASE, "objective": math.nan}]}, "slos[0].objective"),
    "objective-a-string": ({"slos": [{**SLO_BASE, "objective": "99.5%"}]}, "slos[0].objective"),
    "objective-ratio-over-1": ({"slos": [{**SLO_BASE, "objective": 99.5}]}, "slos[0].objective"),
    "settle-nan": ({"slos": [{**SLO_BASE, "settle_s": math.nan}]}, "slos[0].settle_s"),
    "settle-inf": ({"slos": [{**SLO_BASE, "settle_s": math.inf}]}, "slos[0].settle_s"),
    "settle-negative": ({"slos": [{**SLO_BASE, "settle_s": -1}]}, "slos[0].settle_s"),
    "quantile-1-5": ({"slos": [{**SLO_BASE, "template": "latency", "quantile": 1.5, "objective": 500,
                                "comparator": "<="}]}, "slos[0].quantile"),
    "template-unknown": ({"slos": [{**SLO_BASE, "template": "uptime"}]}, "slos[0].template"),
    "comparator-unknown": ({"slos": [{**SLO_BASE, "comparator": "=>"}]}, "slos[0].comparator"),
    "name-with-spaces": ({"slos": [{**SLO_BASE, "name": "ai agent"}]}, "slos[0].name"),
    "phases-unknown": ({"slos": [{**SLO_BASE, "phases": ["warmup"]}]}, "slos[0].phases[0]"),
    "abort-on-breach-a-string": ({"slos": [{**SLO_BASE, "abort_on_breach": "yes"}]}, "slos[0].abort_on_breach"),
    "duplicate-names": ({"slos": [SLO_BASE, SLO_BASE]}, "slos[1].name"),
}

RAW_SLOS: list[tuple[str, str | bytes, str]] = [
    ("not-utf8.yaml", b"slos:\n  - name: caf\xe9\n", "line 3"),  # line 1 is the `# field:` header
    ("complex-key.yaml", "slos:\n  - ? [a, b]\n    : 1\n", "line 3"),
    ("five-thousand-digit-objective.yaml", "slos:\n  - {name: a, template: availability, service: x, comparator: '>=', "
                                           "objective: " + "9" * 5000 + "}\n", "line 3"),
    ("deeply-nested.yaml", "slos: " + "[" * 3000 + "]" * 3000 + "\n", "(document)"),
    ("unquoted-comparator.yaml", "slos:\n  - name: a\n    template: availability\n    service: x\n"
                                 "    objective: 0.9\n    comparator: >=\n", "line 7"),
]

RUN_BASE: dict[str, Any] = {
    "experiment": {"title": "a corpus run", "method": []},
    "status": "completed", "start": "2026-12-05T00:00:00+00:00", "duration": 30.0, "node": "localhost",
    "harness": {
        "platform": "local", "phase": "done", "exit_code": 0, "error": None, "inconclusive": None,
        "interrupted_by": None, "abort_on_breach": None,
        "phases": {"baseline": {"start": 1796000000.0, "end": 1796000010.0},
                   "chaos": {"start": 1796000010.0, "end": 1796000020.0},
                   "recovery": {"start": 1796000020.0, "end": 1796000030.0}},
        "chaos": {"faults": [{"kind": "delay", "target": "user-service", "requested_at": 1796000010.1,
                              "applied_at": 1796000010.2, "reverted_at": 1796000019.9,
                              "details": {"delay_ms": 50, "percentage": 100}}],
                  "pod_kills": [{"pod": "ai-agent-v1-0", "killed_at": 1796000012.0, "recovered_at": 1796000013.0,
                                 "recovery_s": 1.0}]},
        "undo": [{"description": "remove the delay", "registered_at": 1796000010.2, "done_at": 1796000019.9,
                  "error": None}],
        "slo_results": [{"name": "client-availability", "phase": phase, "query": "client availability",
                         "value": 1.0, "objective": 0.99, "comparator": ">=", "verdict": "pass",
                         "window_start": start, "window_end": start + 10.0, "source": "client", "detail": ""}
                        for phase, start in (("baseline", 1796000000.0), ("chaos", 1796000010.0),
                                             ("recovery", 1796000020.0))],
    },
}
SAMPLES_HEAD = "timestamp,name,method,status,latency_ms,tier,ok,response_length,error\n"
SAMPLES_ROWS = "".join(f"{1796000000.5 + i},chat [standard],POST,200,{20 + i % 7}.5,standard,True,500,\n"
                       for i in range(30))


def _h(*keys: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def reach(j: dict[str, Any]) -> dict[str, Any]:
        node: Any = j["harness"]
        for key in keys:
            node = node[key]
        return node
    return reach


RUNS: dict[str, tuple[Callable[[dict[str, Any]], Any] | str | bytes, str, str]] = {
    # name -> (change to RUN_BASE, or raw journal text/bytes; field; samples: "ok", "none" or raw CSV)
    "journal-not-json": ("{not json", "line 1", "none"),
    "journal-not-utf8": (b'{"experiment": {"title": "caf\xe9"}}', "(file)", "none"),
    "journal-a-list": ("[1, 2]", "experiment", "none"),
    "journal-deeply-nested": ('{"experiment": ' + "[" * 5000 + "]" * 5000 + "}", "(document)", "none"),
    "journal-5000-digit-number": ('{"experiment": {}, "duration": ' + "9" * 5000 + "}", "(document)", "none"),
    "experiment-a-string": (root("experiment", "pod-kill"), "experiment", "none"),
    "harness-a-list": (root("harness", []), "harness", "none"),
    "phases-a-list": (setter(_h(), "phases", ["baseline"]), "harness.phases", "none"),
    "phase-start-a-string": (setter(_h("phases", "baseline"), "start", "yesterday"), "harness.phases.baseline.start",
                             "none"),
    "phase-start-nan": (setter(_h("phases", "baseline"), "start", math.nan), "harness.phases.baseline.start", "none"),
    "phase-end-huge": (setter(_h("phases", "chaos"), "end", 1e300), "harness.phases.chaos.end", "none"),
    "phase-end-infinite": (setter(_h("phases", "chaos"), "end", math.inf), "harness.phases.chaos.end", "none"),
    "exit-code-a-string": (setter(_h(), "exit_code", "0"), "harness.exit_code", "none"),
    "exit-code-true": (setter(_h(), "exit_code", True), "harness.exit_code", "none"),
    "exit-code-unknown": (setter(_h(), "exit_code", 7), "harness.exit_code", "none"),
    "chaos-a-string": (setter(_h(), "chaos", "none"), "harness.chaos", "none"),
    "pod-kills-a-mapping": (setter(_h("chaos"), "pod_kills", {"pod": "x"}), "harness.chaos.pod_kills", "none"),
    "pod-kill-time-a-string": (lambda j: j["harness"]["chaos"]["pod_kills"][0].__setitem__("killed_at", "noon"),
                               "harness.chaos.pod_kills[0].killed_at", "none"),
    "fault-without-requested-at": (lambda j: j["harness"]["chaos"]["faults"][0].pop("requested_at"),
                                   "harness.chaos.faults[0].requested_at", "none"),
    "fault-details-a-list": (lambda j: j["harness"]["chaos"]["faults"][0].__setitem__("details", [50]),
                             "harness.chaos.faults[0].details", "none"),
    "fault-percentage-nan": (lambda j: j["harness"]["chaos"]["faults"][0]["details"].__setitem__("percentage",
                                                                                                   math.nan),
                             "harness.chaos.faults[0].details.percentage", "none"),
    "slo-results-a-mapping": (setter(_h(), "slo_results", {"name": "x"}), "harness.slo_results", "none"),
    "slo-objective-a-string": (lambda j: j["harness"]["slo_results"][0].__setitem__("objective", "0.99"),
                               "harness.slo_results[0].objective", "none"),
    "slo-value-nan": (lambda j: j["harness"]["slo_results"][1].__setitem__("value", math.nan),
                      "harness.slo_results[1].value", "none"),
    "slo-window-huge": (lambda j: j["harness"]["slo_results"][0].__setitem__("window_end", 10 ** 400),
                        "harness.slo_results[0].window_end", "none"),
    "slo-verdict-unknown": (lambda j: j["harness"]["slo_results"][0].__setitem__("verdict", "maybe"),
                            "harness.slo_results[0].verdict", "none"),
    "slo-entry-a-number": (lambda j: j["harness"]["slo_results"].__setitem__(0, 5), "harness.slo_results[0]", "none"),
    "undo-entry-a-string": (setter(_h(), "undo", ["removed"]), "harness.undo[0]", "none"),
    "duration-a-string": (root("duration", "30 s"), "duration", "none"),
    "breach-value-a-string": (setter(_h(), "abort_on_breach", {"name": "x", "value": "high"}),
                              "harness.abort_on_breach.value", "none"),
    "samples-latency-not-a-number": (lambda j: None, "latency_ms", SAMPLES_HEAD + SAMPLES_ROWS
                                     + "1796000005.0,chat [standard],POST,200,fast,standard,True,500,\n"),
    "samples-timestamp-nan": (lambda j: None, "timestamp", SAMPLES_HEAD + "nan,chat [standard],POST,200,20.5,"
                                                            "standard,True,500,\n" + SAMPLES_ROWS),
    "samples-status-a-word": (lambda j: None, "status", SAMPLES_HEAD + SAMPLES_ROWS
                              + "1796000005.0,chat [standard],POST,OK,20.5,standard,True,500,\n"),
    "samples-missing-column": (lambda j: None, "columns", "timestamp,name\n1796000005.0,chat\n"),
    "samples-latency-infinite": (lambda j: None, "latency_ms", SAMPLES_HEAD + SAMPLES_ROWS
                                 + "1796000005.0,chat [standard],POST,200,inf,standard,True,500,\n"),
}


def _yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=False, width=1000)


def write_all() -> int:
    count = 0
    for folder in ("experiments", "slos", "runs"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
        (HERE / folder).mkdir()
    for name, (change, field) in EXPERIMENTS.items():
        document = copy.deepcopy(BASE)
        changed = change(document)
        text = _yaml(changed if name.startswith("document") else document)
        (HERE / "experiments" / f"{name}.yaml").write_text(f"# field: {field}\n{text}")
        count += 1
    for name, raw, field in RAW_EXPERIMENTS:
        _write_raw(HERE / "experiments" / name, raw, field)
        count += 1
    for name, (document, field) in SLOS.items():
        (HERE / "slos" / f"{name}.yaml").write_text(f"# field: {field}\n{_yaml(document)}")
        count += 1
    for name, raw, field in RAW_SLOS:
        _write_raw(HERE / "slos" / name, raw, field)
        count += 1
    for name, (change, field, samples) in RUNS.items():
        directory = HERE / "runs" / name
        directory.mkdir()
        if isinstance(change, (str, bytes)):
            data = change.encode() if isinstance(change, str) else change
        else:
            journal = copy.deepcopy(RUN_BASE)
            change(journal)
            data = json.dumps(journal, indent=1).encode()  # NaN and Infinity as Python's json writes them
        (directory / "journal.json").write_bytes(data)
        if samples != "none":
            (directory / "samples.csv").write_text(SAMPLES_HEAD + SAMPLES_ROWS if samples == "ok" else samples)
        (directory / "expect.txt").write_text(f"field: {field}\n")
        count += 1
    valid = HERE / "valid-run"
    shutil.rmtree(valid, ignore_errors=True)
    valid.mkdir()
    (valid / "journal.json").write_text(json.dumps(RUN_BASE, indent=1))
    (valid / "samples.csv").write_text(SAMPLES_HEAD + SAMPLES_ROWS)
    (HERE / "valid-experiment.yaml").write_text(_yaml(BASE))
    return count


def _write_raw(path: Path, raw: str | bytes, field: str) -> None:
    header = f"# field: {field}\n".encode()
    path.write_bytes(header + (raw.encode() if isinstance(raw, str) else raw))


if __name__ == "__main__":
    print(f"wrote {write_all()} cases under {HERE}")
