"""Load SLO files; every problem is a ConfigError naming the file, the field path and what was expected."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from harness.errors import ConfigError
from harness.slo.model import COMPARATORS, PARAMETERS, PHASES, REPORTERS, SOURCES, TEMPLATE_PARAMS, TEMPLATES, Slo

_FIELDS = ("name", "query", "template", *PARAMETERS, "objective", "comparator", "phases", "abort_on_breach",
           "description", "source", "settle_s")  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # SLO names and service names (api.openai.com)
_RATIO_TEMPLATES = ("availability", "error_ratio")
MAX_NUMBER = 1e12  # objectives are ratios or milliseconds; past this a number is a typo, or no number at all
MAX_SETTLE_S = 3600.0  # the chaos window opens this long after chaos starts: an hour is already generous


def load_slo_file(path: str | Path) -> list[Slo]:
    """The SLOs of a YAML file `slos: [{name, template|query, objective, comparator, ...}, ...]`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the SLO file: {exc.strerror}", file=path, field="(file)") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"expected UTF-8 text, found byte 0x{exc.object[exc.start]:02x} on line {line}", file=path,
                          field=f"line {line}") from exc
    document = _parse_yaml(text, path)
    if not isinstance(document, dict) or "slos" not in document:
        raise ConfigError("expected a mapping with a list `slos:` of SLOs", file=path, field="slos")
    for key in document:
        if key != "slos":
            raise ConfigError(f"unknown field {key!r}; expected only `slos`", file=path, field=str(key))
    entries = document["slos"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"expected a non-empty list of SLOs, got {_kind(entries)}", file=path, field="slos")
    slos: list[Slo] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        slo = parse_slo(entry, file=path, field=f"slos[{index}]")
        if slo.name in first_index:
            raise ConfigError(
                f"duplicate name {slo.name!r} (slos[{first_index[slo.name]}] has it); expected unique names",
                file=path, field=f"slos[{index}].name",
            )  # fmt: skip
        first_index[slo.name] = index
        slos.append(slo)
    return slos


def parse_slo(raw: Any, *, file: str | Path | None = None, field: str = "slo") -> Slo:
    """One SLO from its parsed mapping; also for SLOs given inline, e.g. as a probe's arguments."""
    fields = _Fields(raw, file, field)
    name = fields.text("name", required=True, pattern=_IDENTIFIER)
    source = fields.choice("source", SOURCES, default="mesh")
    query, template = fields.text("query"), fields.choice("template", TEMPLATES)
    if (query is None) == (template is None):
        raise fields.error("template", "expected exactly one of `query` (raw PromQL) or `template` "
                           f"(one of {', '.join(TEMPLATES)})")  # fmt: skip
    if query is not None and source == "client":
        raise fields.error("query", "expected a `template` for a client-side SLO (PromQL needs Prometheus)")
    fields.check_parameters(source, template, query)
    comparator = fields.choice("comparator", tuple(COMPARATORS), required=True)
    objective = fields.number("objective")
    if template in _RATIO_TEMPLATES and not 0 <= objective <= 1:
        raise fields.error("objective", f"expected a ratio between 0 and 1 for template {template}, "
                           f"got {objective} (write 99.5% as 0.995)")  # fmt: skip
    phases = fields.phases()
    settle_s = fields.number("settle_s") if "settle_s" in fields.raw else 0.0
    if not 0 <= settle_s <= MAX_SETTLE_S:
        raise fields.error("settle_s", f"expected seconds >= 0 and <= {MAX_SETTLE_S:g}, got {settle_s}")
    abort = fields.boolean("abort_on_breach")
    if abort and (source == "client" or "chaos" not in phases):
        raise fields.error("abort_on_breach", "expected only on a mesh SLO that holds in phase chaos "
                           "(the watch queries Prometheus while chaos runs)")  # fmt: skip
    return Slo(
        name=cast(str, name), objective=objective, comparator=comparator, query=query, template=template,
        service=fields.text("service", pattern=_IDENTIFIER), reporter=fields.choice("reporter", REPORTERS, default="source"),
        quantile=fields.quantile(), tier=fields.text("tier"), request=fields.text("request"),
        phases=phases, abort_on_breach=abort, description=fields.text("description") or "", settle_s=settle_s,
        source=source, file=str(file) if file is not None else None, field=field,
    )  # fmt: skip


class _Fields:
    """Typed reads of one SLO mapping, each failure a ConfigError at `<field>.<key>`."""

    def __init__(self, raw: Any, file: str | Path | None, field: str) -> None:
        self.file, self.field = file, field
        if not isinstance(raw, Mapping):
            raise ConfigError(f"expected a mapping with name, objective, comparator, ..., got {_kind(raw)}",
                              file=file, field=field)  # fmt: skip
        self.raw = raw
        for key in raw:
            if key not in _FIELDS:
                raise self.error(str(key), f"unknown field; expected one of {', '.join(sorted(_FIELDS))}")

    def error(self, key: str, message: str) -> ConfigError:
        name = self.raw.get("name")
        named = f" (SLO {name!r})" if isinstance(name, str) else ""
        return ConfigError(f"{message}{named}", file=self.file, field=f"{self.field}.{key}")

    def text(self, key: str, *, required: bool = False, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.error(key, "missing; expected a string")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"expected letters, digits, '.', '_' or '-' (starting with a letter or digit), got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, required: bool = False, default: str | None = None) -> Any:
        value = self.raw.get(key)
        if value is None and not required:
            return default
        if value not in choices:
            unquoted = key == "comparator" and value in (None, "")  # `comparator: >` is YAML's folded ""
            hint = ' (quote it in YAML: comparator: ">=")' if unquoted else ""
            got = "nothing" if value is None else f"{value!r}"
            raise self.error(key, f"expected one of {', '.join(repr(c) for c in choices)}{hint}, got {got}")
        return value

    def number(self, key: str) -> float:
        value = self.raw.get(key)
        if value is None:
            raise self.error(key, "missing; expected a number")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise self.error(key, f"expected a finite number of magnitude at most {MAX_NUMBER:g}, got {_kind(value)}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_kind(value)}")
        return value

    def quantile(self) -> float | None:
        if self.raw.get("quantile") is None:
            return None
        value = self.number("quantile")
        if not 0 < value < 1:
            raise self.error("quantile", f"expected a number between 0 and 1 exclusive (0.99 for p99), got {value}")
        return value

    def phases(self) -> tuple[Any, ...]:
        value = self.raw.get("phases")
        if value is None:
            return PHASES
        if not isinstance(value, list) or not value:
            raise self.error("phases", f"expected a non-empty list from {', '.join(PHASES)}, got {_kind(value)}")
        for index, phase in enumerate(value):
            if phase not in PHASES or phase in value[:index]:
                problem = "repeated" if phase in PHASES else "unknown"
                raise self.error(f"phases[{index}]", f"{problem} phase {phase!r}; expected each of "
                                 f"{', '.join(PHASES)} at most once")  # fmt: skip
        return tuple(phase for phase in PHASES if phase in value)

    def check_parameters(self, source: str, template: str | None, query: str | None) -> None:
        if template is None:
            for key in PARAMETERS:
                if key != "service" and key in self.raw:
                    raise self.error(key, "not a parameter of a raw `query` (only `service`, for $service)")
            if "$service" in (query or "") and self.raw.get("service") is None:
                raise self.error("service", "missing; expected a destination service name for $service in the query")
            return
        required, optional = TEMPLATE_PARAMS[(source, template)]  # type: ignore[index]
        for key in PARAMETERS:
            if key in self.raw and key not in required + optional:
                allowed = ", ".join(required + optional) or "none"
                raise self.error(key, f"not a parameter of {source} template {template} (its parameters: {allowed})")
        for key in required:
            if self.raw.get(key) is None:
                raise self.error(key, f"missing; template {template} needs `{key}`"
                                 + (" (e.g. 0.99 for p99)" if key == "quantile" else " (a destination_service_name)"))  # fmt: skip


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError as exc:
        raise ConfigError("expected an SLO file, found YAML nested too deeply to read", file=path,
                          field="(document)") from exc
    except ValueError as exc:  # PyYAML's int() of a number past Python's 4300-digit limit
        raise ConfigError(f"expected numbers of ordinary size: {exc}", file=path, field="(document)") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        hint = '; quote comparators in YAML: comparator: ">="' if re.match(r"\s*-?\s*comparator\s*:\s*>", line) else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML{where}: {problem}{hint}", file=path) from exc  # the line is the field


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"expected a plain key (a name), got a {type(key).__name__}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}; expected each key once", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """PyYAML's int(), with a number past Python's 4300-digit limit an error at its line."""
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return,no-untyped-call]
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a number of ordinary size, got one of {len(node.value)} digits", node.start_mark
            ) from exc


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
