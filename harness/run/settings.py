"""What an experiment asks of the harness: its load, SLO file and phase lengths (the control's arguments)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SLO_FILE = PROJECT_ROOT / "slos" / "default.yaml"
LOAD_FIELDS = {"locustfile", "users", "spawn_rate", "shape", "think_time_s", "workers", "env"}
PHASE_DEFAULTS = {"warmup_s": 3.0, "baseline_s": 10.0, "recovery_s": 10.0}
ARGUMENT_FIELDS = {"load", "slo_file", "slos", "baseline_s", "recovery_s", "warmup_s", "run_dir"}


@dataclass(frozen=True)
class LoadSettings:
    locustfile: Path
    users: int = 10
    spawn_rate: float = 10.0  # users started per second
    shape: str | None = None  # steady | ramp | spike | soak; None: plain -u/-r
    think_time_s: tuple[float, float] | None = None  # None: the locustfile's own
    workers: int = 0  # Locust workers in distributed mode; 0 runs one process
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentSettings:
    """The harness control's arguments, validated; paths are relative to the experiment file."""

    load: LoadSettings | None
    slo_file: Path
    slos: tuple[str, ...] | None = None  # names to evaluate; None: every SLO in the file
    warmup_s: float = 3.0  # load runs this long before the baseline window opens
    baseline_s: float = 10.0  # steady load before chaos
    recovery_s: float = 10.0  # load after every fault is undone, before the verdict


def _env_number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"expected a number of seconds, got {raw!r}", field=name) from exc


def _number(value: Any, where: str, *, minimum: float = 0.0, integer: bool = False) -> float:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        wanted = "a whole number" if integer else "a number"
        raise ConfigError(f"expected {wanted} >= {minimum}, got {value!r}", field=where)
    return value


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
        slo_file = resolve_path(arguments.get("slo_file") or DEFAULT_SLO_FILE, base_dir)
        if not slo_file.is_file():
            raise ConfigError(f"no SLO file at {slo_file}", field=f"{prefix}.slo_file")
        names = arguments.get("slos")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ConfigError("expected a list of SLO names", field=f"{prefix}.slos")
        phases = {name: arguments.get(name, default) for name, default in PHASE_DEFAULTS.items()}
        for name in PHASE_DEFAULTS:  # HARNESS_BASELINE_S etc. shorten every experiment, e.g. in CI
            override = os.environ.get(f"HARNESS_{name.upper()}")
            if override is not None:
                phases[name] = _env_number(override, f"HARNESS_{name.upper()}")
        return ExperimentSettings(
            load=load, slo_file=slo_file, slos=tuple(names) if names is not None else None,
            warmup_s=_number(phases["warmup_s"], f"{prefix}.warmup_s"),
            baseline_s=_number(phases["baseline_s"], f"{prefix}.baseline_s", minimum=1.0),
            recovery_s=_number(phases["recovery_s"], f"{prefix}.recovery_s", minimum=1.0),
        )
    except ConfigError as exc:
        if file is not None and exc.file is None:
            raise ConfigError(exc.message, file=file, field=exc.field) from exc
        raise


def _load(raw: Any, base_dir: Path, where: str) -> LoadSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping with locustfile, users, spawn_rate, ...", field=where)
    unknown = set(raw) - LOAD_FIELDS
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)}; expected {sorted(LOAD_FIELDS)}", field=where)
    if "locustfile" not in raw:
        raise ConfigError("missing: the Locust file to run", field=f"{where}.locustfile")
    locustfile = resolve_path(raw["locustfile"], base_dir)
    if not locustfile.is_file():
        raise ConfigError(f"no locustfile at {locustfile}", field=f"{where}.locustfile")
    think = raw.get("think_time_s")
    if think is not None:
        if not (isinstance(think, list) and len(think) == 2):
            raise ConfigError("expected [min, max] seconds", field=f"{where}.think_time_s")
        think = (float(_number(think[0], f"{where}.think_time_s[0]")), float(_number(think[1], f"{where}.think_time_s[1]")))
    shape = raw.get("shape")
    if shape is not None and shape not in ("steady", "ramp", "spike", "soak"):
        raise ConfigError(f"expected steady, ramp, spike or soak, got {shape!r}", field=f"{where}.shape")
    env = raw.get("env") or {}
    if not isinstance(env, Mapping):
        raise ConfigError("expected a mapping of environment variables", field=f"{where}.env")
    return LoadSettings(
        locustfile=locustfile,
        users=int(_number(raw.get("users", 10), f"{where}.users", minimum=1, integer=True)),
        spawn_rate=float(_number(raw.get("spawn_rate", 10), f"{where}.spawn_rate", minimum=0.1)),
        shape=shape, think_time_s=think,
        workers=int(_number(raw.get("workers", 0), f"{where}.workers", integer=True)),
        env={str(k): str(v) for k, v in env.items()},
    )
