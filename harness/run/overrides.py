"""Load and SLO settings given on the command line or in HARNESS_* variables, over the experiment's own.

A CI job scales one experiment without editing it (`harness run EXP --users 40 --rate 200 --duration
60s`), and a plain Chaos Toolkit experiment, which has no harness control, gets its load and SLOs
this way (`--locustfile`, `--users`/`--rate`, `--slo-file`, `--slos`). A flag wins over its variable;
both win over the experiment. Every value is checked by the same rules as the experiment's field
(harness.load NUMBER_RULES), and an error names the flag or variable it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.load._spec import number_problem
from harness.mesh.durations import parse_duration
from harness.pathcheck import checked_path
from harness.run.capacity import check_experiment
from harness.run.settings import TIMED_SHAPES, ExperimentSettings, LoadSettings, parse_settings

FLAGS = {  # override -> (command-line flag, environment variable)
    "users": ("--users", "HARNESS_USERS"),
    "rate": ("--rate", "HARNESS_RATE"),
    "duration_s": ("--duration", "HARNESS_DURATION"),
    "workers": ("--workers", "HARNESS_WORKERS"),
    "locustfile": ("--locustfile", "HARNESS_LOCUSTFILE"),
    "slo_file": ("--slo-file", "HARNESS_SLO_FILE"),
    "slos": ("--slos", "HARNESS_SLOS"),
}
PLAIN_EXAMPLE = ("harness run EXPERIMENT --locustfile locustfiles/ai_agent.py --users 30 "
                 "--slo-file slos/default.yaml")


@dataclass(frozen=True)
class RunOverrides:
    """Parsed overrides; None: not given. `sources` names where each given value came from."""

    users: int | None = None
    rate: float | None = None  # requests per second over all users
    duration_s: float | None = None
    workers: int | None = None
    locustfile: Path | None = None
    slo_file: Path | None = None
    slos: tuple[str, ...] | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def gives_load(self) -> bool:
        return self.locustfile is not None and (self.users is not None or self.rate is not None)


def collect(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> RunOverrides:
    """Overrides from raw flag values (keys of FLAGS; None: flag not given) over HARNESS_* variables."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (flag, variable) in FLAGS.items():
        raw, source = flags.get(name), flag
        if raw is None:
            raw, source = environ.get(variable) or None, variable
        if raw is None:
            continue
        values[name] = _parse(name, str(raw).strip(), source)
        sources[name] = source
    return RunOverrides(**values, sources=sources)


def _parse(name: str, raw: str, source: str) -> Any:
    try:
        if name in ("users", "workers"):
            return int(raw)
        if name == "rate":
            return float(raw.removesuffix("/s"))
        if name == "duration_s":
            return parse_duration(raw if not raw.replace(".", "", 1).isdigit() else float(raw))
    except ValueError:
        kind = "a duration such as 60s or 2m" if name == "duration_s" else (
            "a whole number" if name in ("users", "workers") else "a number of requests per second")
        raise ConfigError(f"expected {kind}, got {raw!r}", field=source) from None
    if name in ("locustfile", "slo_file"):
        return Path(checked_path(raw, field=source)).expanduser()
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if not names:
        raise ConfigError(f"expected comma-separated SLO names, got {raw!r}", field=source)
    return names


def settings_for(experiment: Mapping[str, Any], path: Path, arguments: Mapping[str, Any] | None,
                 overrides: RunOverrides) -> ExperimentSettings:
    """The run's settings: the harness control's `arguments` (None: a plain Chaos Toolkit experiment,
    which then needs its load and SLOs from `overrides`), with the overrides applied."""
    if arguments is None:
        missing = [] if overrides.locustfile is not None else ["--locustfile FILE"]
        if overrides.users is None and overrides.rate is None:
            missing.append("--users N (or --rate R)")
        if overrides.slo_file is None:
            missing.append("--slo-file FILE")
        if missing:
            raise ConfigError(f"a plain Chaos Toolkit experiment (no harness control) runs under `harness run` "
                              f"when its load and SLOs are given: add {' '.join(missing)}, as in "
                              f"`{PLAIN_EXAMPLE}` (--slos a,b picks SLOs of the file)", file=path, field="controls")
        arguments = {}
    settings = apply(parse_settings(arguments, path.parent, file=path), overrides, file=path)
    check_experiment(experiment, settings.capacity, path)
    return settings


def _problem(overrides: RunOverrides, name: str) -> None:
    problem = number_problem(name, getattr(overrides, name))
    if problem:
        raise ConfigError(problem, field=overrides.sources.get(name, name))


def _existing(overrides: RunOverrides, name: str) -> Path:
    path = Path(getattr(overrides, name))
    path = path if path.is_absolute() else (Path.cwd() / path)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}", field=overrides.sources.get(name, name))
    return path.resolve()


def apply(settings: ExperimentSettings, overrides: RunOverrides, *, file: Path | None = None) -> ExperimentSettings:
    """`settings` with every given override; ConfigError naming the flag or variable."""
    load = settings.load
    if overrides.locustfile is not None:
        locustfile = _existing(overrides, "locustfile")
        load = LoadSettings(locustfile=locustfile) if load is None else dataclasses.replace(load, locustfile=locustfile)
    given = [n for n in ("users", "rate", "duration_s", "workers") if getattr(overrides, n) is not None]
    if given and load is None:
        raise ConfigError(f"{overrides.sources[given[0]]} changes the load, but the experiment declares none: "
                          f"add --locustfile FILE", file=file, field=overrides.sources[given[0]])
    if settings.capacity is not None:
        for name in ("users", "rate"):
            if getattr(overrides, name) is not None:
                raise ConfigError("a capacity run sets users and rate per step (its capacity: start_rps, step_rps, "
                                  "ceiling_rps, user_rps)", file=file, field=overrides.sources[name])
    if load is not None:
        changes: dict[str, Any] = {}
        for name in given:
            _problem(overrides, name)
            changes[name] = getattr(overrides, name)
        if overrides.rate is not None:
            changes["think_time_s"] = None  # the rate sets each user's wait
        load = dataclasses.replace(load, **changes)
    result = dataclasses.replace(settings, load=load)
    if overrides.slo_file is not None:
        result = dataclasses.replace(result, slo_file=_existing(overrides, "slo_file"), slos=None)
    if overrides.slos is not None:
        result = dataclasses.replace(result, slos=overrides.slos)
    check_duration(result, file=file, field=overrides.sources.get("duration_s"))
    return result


def check_duration(settings: ExperimentSettings, *, file: Path | None = None, field: str | None = None) -> None:
    """A shape that spans the load's duration must outlast the run's fixed phases, or the load would
    end while they still judge it."""
    load = settings.load
    if load is None or load.duration_s is None or load.shape not in TIMED_SHAPES:
        return
    phases = settings.warmup_s + settings.baseline_s + settings.recovery_s
    if load.duration_s < phases:
        raise ConfigError(f"the {load.shape} shape lasts duration_s {load.duration_s:g} s, less than the run's "
                          f"warm-up, baseline and recovery ({phases:g} s): lengthen it",
                          file=file, field=field or "controls[harness].provider.arguments.load.duration_s")
