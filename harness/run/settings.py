"""What an experiment asks of the harness: its load, SLO file and phase lengths (the control's arguments)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness import environment
from harness.errors import ConfigError
from harness.load._spec import SHAPES, locustfile_problem, number_problem, think_time_problem
from harness.pathcheck import checked_path
from harness.run.capacity import CapacitySettings, parse_capacity
from harness.slo.model import DEFAULT_SLO_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOAD_FIELDS = {"locustfile", "users", "spawn_rate", "shape", "think_time_s", "workers", "env", "rate", "duration_s"}
PHASE_DEFAULTS = {"warmup_s": 3.0, "baseline_s": 10.0, "recovery_s": 10.0}
ARGUMENT_FIELDS = {"load", "slo_file", "slos", "baseline_s", "recovery_s", "warmup_s", "run_dir", "capacity", "mesh"}
TIMED_SHAPES = ("ramp", "spike", "soak")  # shapes whose steps are fractions of the load's duration
MAX_PHASE_S = 24 * 3600.0  # a day: longer is a typo, and NaN or infinity would never end the phase


@dataclass(frozen=True)
class LoadSettings:
    locustfile: Path
    users: int = 10
    spawn_rate: float = 10.0  # users started per second
    shape: str | None = None  # steady | ramp | spike | soak; None: plain -u/-r
    think_time_s: tuple[float, float] | None = None  # None: the locustfile's own
    workers: int = 0  # Locust workers in distributed mode; 0 runs one process
    env: Mapping[str, str] = field(default_factory=dict)
    rate: float | None = None  # open-model target, requests/s over all users; None: think time
    duration_s: float | None = None  # the load runs at least this long (and a shape spans it); None: the phases


@dataclass(frozen=True)
class ExperimentSettings:
    """The harness control's arguments, validated; paths are relative to the experiment file."""

    load: LoadSettings | None
    slo_file: Path
    slos: tuple[str, ...] | None = None  # names to evaluate; None: every SLO in the file
    warmup_s: float = 3.0  # load runs this long before the baseline window opens
    baseline_s: float = 10.0  # steady load before chaos
    recovery_s: float = 10.0  # load after every fault is undone, before the verdict
    capacity: CapacitySettings | None = None  # steps of load in the chaos phase (harness/run/capacity.py)
    mesh: tuple[str, ...] = ()  # shipped DestinationRule/Telemetry manifests the whole run uses (chaos/tuning.py)


def _env_number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"expected a number of seconds, got {raw!r}", field=name) from exc


def _number(value: Any, where: str, *, minimum: float = 0.0, maximum: float = MAX_PHASE_S) -> float:
    """A finite number of seconds in [minimum, maximum]: NaN and infinity would make a phase endless."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not minimum <= value <= maximum:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(f"expected a number of seconds >= {minimum:g} and <= {maximum:g}, got {shown}", field=where)
    return float(value)


def _checked(name: str, value: Any, where: str) -> Any:
    """One numeric load field checked by the load layer's own table (harness.load NUMBER_RULES)."""
    problem = number_problem(name, value)
    if problem:
        raise ConfigError(problem, field=f"{where}.{name}")
    return value


def check_report_dir(run_dir: Path, experiment: Path | None = None) -> None:
    """A run writes into a new or empty directory, so its report never shows a previous run's samples.

    The experiment file itself may be there (a game day writes the walked copy into its run directory).
    """
    run_dir = checked_path(run_dir, field="--report-dir")
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ConfigError("expected a new or empty directory for the run, found a file", file=run_dir,
                          field="--report-dir")
    own = Path(experiment).resolve() if experiment is not None else None
    found = sorted(p.name for p in run_dir.iterdir() if p.resolve() != own)
    if found:
        listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ConfigError(f"expected a new or empty directory for the run, it holds {listed} (a previous run's "
                          "files would mix with this one's); name another --report-dir", file=run_dir,
                          field="--report-dir")


def with_workers(settings: ExperimentSettings, workers: int | None) -> ExperimentSettings:
    """`harness run --workers N` over the experiment's own, checked like the experiment's field."""
    if workers is None or settings.load is None:
        return settings
    problem = number_problem("workers", workers)
    if problem:
        raise ConfigError(problem, field="--workers")
    return dataclasses.replace(settings, load=dataclasses.replace(settings.load, workers=workers))


def path_field(raw: Any, where: str) -> str | Path:
    """A path a user wrote: a string the file system can take (no NUL byte, no over-long name)."""
    return checked_path(raw, field=where)


def resolve_path(raw: str | Path, base_dir: Path) -> Path:
    """Relative to the experiment file, else to the working directory, else to the project."""
    path = Path(raw)
    if path.is_absolute():
        return path
    for base in (base_dir, Path.cwd(), PROJECT_ROOT):
        if (base / path).exists():
            return (base / path).resolve()
    return (base_dir / path).resolve()


def parse_settings(arguments: Mapping[str, Any], base_dir: Path, *, file: Path | None = None) -> ExperimentSettings:
    """Check every argument of the harness control; errors name the experiment file and the field."""
    prefix = "controls[harness].provider.arguments"
    try:
        unknown = set(arguments) - ARGUMENT_FIELDS
        if unknown:
            raise ConfigError(f"unknown argument(s) {sorted(unknown)}; expected {sorted(ARGUMENT_FIELDS)}",
                              field=prefix)
        load = None
        if arguments.get("load") is not None:
            load = _load(arguments["load"], base_dir, f"{prefix}.load")
        capacity = None
        if arguments.get("capacity") is not None:
            capacity = parse_capacity(arguments["capacity"], f"{prefix}.capacity")
            load = _capacity_load(load, arguments.get("load") or {}, capacity, f"{prefix}.load")
        slo_file = resolve_path(path_field(DEFAULT_SLO_FILE if arguments.get("slo_file") is None
                                           else arguments["slo_file"], f"{prefix}.slo_file"),
                                base_dir)
        if not slo_file.is_file():
            raise ConfigError(f"no SLO file at {slo_file}", field=f"{prefix}.slo_file")
        names = arguments.get("slos")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ConfigError("expected a list of SLO names", field=f"{prefix}.slos")
        if names == []:  # nothing judged would pass every run: no data is never a pass
            raise ConfigError("expected at least one SLO name (omit `slos` to judge every SLO of the file)",
                              field=f"{prefix}.slos")
        if names is not None:
            _check_slo_names(names, slo_file, f"{prefix}.slos")
        phases = {name: arguments.get(name, default) for name, default in PHASE_DEFAULTS.items()}
        for name in PHASE_DEFAULTS:  # HARNESS_BASELINE_S etc. shorten every experiment, e.g. in CI
            override = environment.get(f"HARNESS_{name.upper()}")
            if override is not None:
                phases[name] = _env_number(override, f"HARNESS_{name.upper()}")
        return ExperimentSettings(
            load=load, slo_file=slo_file, slos=tuple(names) if names is not None else None,
            warmup_s=_number(phases["warmup_s"], f"{prefix}.warmup_s"),
            baseline_s=_number(phases["baseline_s"], f"{prefix}.baseline_s", minimum=1.0),
            recovery_s=_number(phases["recovery_s"], f"{prefix}.recovery_s", minimum=1.0),
            capacity=capacity, mesh=_mesh(arguments.get("mesh"), f"{prefix}.mesh"),
        )
    except ConfigError as exc:
        if file is not None and exc.file is None:
            raise ConfigError(exc.message, file=file, field=exc.field) from exc
        raise


def _check_slo_names(names: list[str], slo_file: Path, where: str) -> None:
    """Every name in `slos:` is an SLO of the file (the file's own errors name the SLO file)."""
    from harness.slo import load_slo_file

    known = [slo.name for slo in load_slo_file(slo_file)]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"no SLO named {', '.join(unknown)} in {slo_file}; it has {', '.join(known)}", field=where)


def _mesh(raw: Any, where: str) -> tuple[str, ...]:
    """Manifests under harness/mesh/manifests holding only DestinationRules or Telemetry, checked before
    anything starts."""
    from harness.chaos.tuning import mesh_change_documents

    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise ConfigError("expected a list of manifests such as [variants/connection-pool-for-load.yaml]", field=where)
    from harness.mesh.loader import build_model, load_documents, merge_documents
    from harness.mesh.schema import default_manifest_paths

    declared = load_documents(default_manifest_paths())
    for index, manifest in enumerate(raw):
        try:
            documents = mesh_change_documents(manifest)
            # the mesh the run would be on, checked as a whole now (CEL, one Telemetry per namespace, ...),
            # not when the session applies it with the load about to start
            build_model(merge_documents(declared, [(doc, manifest) for doc in documents]))
        except ConfigError as exc:  # the variant's own field (spec....), when the error names one
            inner = f"{exc.field}: " if exc.field and exc.field != "manifest" else ""
            raise ConfigError(inner + exc.message, field=f"{where}[{index}]") from exc
    return tuple(raw)


def _capacity_load(load: LoadSettings | None, raw: Any, capacity: CapacitySettings, where: str) -> LoadSettings:
    """A capacity run starts at its first step: users and rate come from the steps, never from `load`."""
    if load is None:
        raise ConfigError("missing: a capacity run needs its load's locustfile", field=f"{where}.locustfile")
    given = sorted({"users", "rate", "think_time_s", "shape"} & set(raw))
    if given:
        raise ConfigError(f"a capacity run sets users and rate per step (capacity.start_rps, user_rps); "
                          f"remove {', '.join(given)}", field=f"{where}.{given[0]}")
    users = capacity.users_for(capacity.start_rps)
    return dataclasses.replace(load, users=users, rate=users * capacity.user_rps)


def _load(raw: Any, base_dir: Path, where: str) -> LoadSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping with locustfile, users, spawn_rate, ...", field=where)
    unknown = set(raw) - LOAD_FIELDS
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)}; expected {sorted(LOAD_FIELDS)}", field=where)
    if "locustfile" not in raw:
        raise ConfigError("missing: the Locust file to run", field=f"{where}.locustfile")
    locustfile = resolve_path(path_field(raw["locustfile"], f"{where}.locustfile"), base_dir)
    if not locustfile.is_file():
        raise ConfigError(f"no locustfile at {locustfile}", field=f"{where}.locustfile")
    problem = locustfile_problem(locustfile)
    if problem:
        raise ConfigError(problem, field=f"{where}.locustfile")
    think = raw.get("think_time_s")
    if think is not None:
        problem = think_time_problem(think)
        if problem:
            raise ConfigError(problem, field=f"{where}.think_time_s")
        think = (float(think[0]), float(think[1]))
    shape = raw.get("shape")
    if shape is not None and shape not in SHAPES:
        raise ConfigError(f"expected one of {', '.join(SHAPES)}, got {shape!r}", field=f"{where}.shape")
    rate = raw.get("rate")
    if rate is not None:
        rate = float(_checked("rate", rate, where))
        if think is not None:
            raise ConfigError("give either a rate (requests/s) or a think time, not both",
                              field=f"{where}.rate")
    duration = raw.get("duration_s")
    if duration is not None:
        duration = float(_checked("duration_s", duration, where))
    if shape in TIMED_SHAPES and duration is None:
        raise ConfigError(f"the {shape} shape spans the load's duration: give duration_s (seconds)",
                          field=f"{where}.duration_s")
    env = raw.get("env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                               and not isinstance(v, bool) for k, v in env.items()):
        raise ConfigError("expected a mapping of environment variable names to strings or numbers",
                          field=f"{where}.env")
    return LoadSettings(
        locustfile=locustfile,
        users=int(_checked("users", raw.get("users", 10), where)),
        spawn_rate=float(_checked("spawn_rate", raw.get("spawn_rate", 10), where)),
        shape=shape, think_time_s=think,
        workers=int(_checked("workers", raw.get("workers", 0), where)),
        env={str(k): str(v) for k, v in env.items()},
        rate=rate, duration_s=duration,
    )
