"""Prometheus for the local mesh: its config, its file_sd targets, its command line and its binaries."""

# The daemon renders the config once per run, rewrites the targets whenever pods come and go, and
# starts `prometheus_argv(...)` under the supervisor. Istio's standard series come from the recording
# rules in prometheus/recording-rules.yaml (RECORDING_RULES), computed from Envoy's native stats.
#
# Target pickup: Prometheus hands discovered targets (file_sd and static_configs alike) to the scrape
# manager only on a fixed 5 s tick (the discovery manager's `updatert`, settable in its unit tests
# only), and 2.42's scrape manager applies updates at most every 5 s as well; a new target is then
# first scraped at a hash-based offset within one scrape interval. Measured here: /-/ready after ~1 s,
# first scrape at 5.4 s, a target added later picked up after 4.5 s. No flag of 2.42 shortens this.
# What helps: write the targets files before (or within 5 s of) starting Prometheus so the first tick
# carries all of them, start Prometheus first among the mesh processes, keep the interval at 1 s, and
# wait on /api/v1/targets rather than a fixed sleep.

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from harness.errors import ConfigError, MissingDependencyError
from harness.files import atomic_write
from harness.platforms.local.recording_rules import SELF_LABEL, metric_relabel_configs

RECORDING_RULES = Path(__file__).with_name("prometheus") / "recording-rules.yaml"

# Samples are only needed for the run and its report; a short retention keeps the data dir small.
RETENTION = "6h"

# file_sd also watches the files with inotify; the refresh interval is only the fallback re-read.
FILE_SD_REFRESH = "5s"

JOBS: Mapping[str, str] = MappingProxyType({"envoy": "/stats/prometheus", "apps": "/metrics"})

_APP_LABELS = frozenset({"pod", "app", "version", "region", "service", "namespace"})
REQUIRED_LABELS: Mapping[str, frozenset[str]] = MappingProxyType(
    # SELF_LABEL: the proxy's own side of Istio's labels (translate/telemetry.self_value), which the
    # relabeling turns into labels of its istio series and drops from every series
    {"envoy": _APP_LABELS | {"proxy_kind", SELF_LABEL}, "apps": _APP_LABELS}
)
_ADDRESS = re.compile(r"127\.0\.0\.1:([0-9]{1,5})")


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint Prometheus scrapes, with the target labels docs/architecture.md fixes."""

    address: str  # "127.0.0.1:<port>": an Envoy admin address (job envoy) or an app (job apps)
    job: str  # "envoy" or "apps"
    labels: Mapping[str, str]  # exactly REQUIRED_LABELS[job]; stored read-only

    def __post_init__(self) -> None:
        port = _ADDRESS.fullmatch(self.address)
        if port is None or not 0 < int(port.group(1)) < 65536:
            raise ConfigError(f"expected 127.0.0.1:<port>, got {self.address!r}", field="address")
        if self.job not in JOBS:
            raise ConfigError(f"expected one of {sorted(JOBS)}, got {self.job!r}", field="job")
        required = REQUIRED_LABELS[self.job]
        missing, extra = required - self.labels.keys(), self.labels.keys() - required
        if missing or extra:
            raise ConfigError(
                f"job {self.job} targets carry exactly {sorted(required)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}",
                field="labels",
            )
        empty = sorted(name for name, value in self.labels.items() if not value)
        if empty:
            raise ConfigError(f"labels must not be empty: {empty}", field="labels")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __hash__(self) -> int:
        return hash((self.address, self.job, tuple(sorted(self.labels.items()))))


def render_config(*, targets_dir: Path, rules_path: Path, scrape_interval_s: float = 1.0) -> str:
    """prometheus.yml: jobs `envoy` and `apps` from file_sd files in `targets_dir`, plus the rules."""
    if not 0.1 <= scrape_interval_s <= 60:
        raise ConfigError(f"expected 0.1 to 60 seconds, got {scrape_interval_s}", field="scrape_interval_s")
    interval_ms = round(scrape_interval_s * 1000)
    config = {
        "global": {
            "scrape_interval": _duration(interval_ms),
            # Must not exceed the interval; a scrape that slow is a failed scrape here anyway.
            "scrape_timeout": _duration(interval_ms * 4 // 5),
            "evaluation_interval": _duration(interval_ms),
        },
        "rule_files": [str(rules_path)],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "file_sd_configs": [
                    {"files": [str(targets_file(targets_dir, job))], "refresh_interval": FILE_SD_REFRESH}
                ],
                # Istio's labels finished once per new series (recording_rules.metric_relabel_configs).
                **({"metric_relabel_configs": metric_relabel_configs()} if job == "envoy" else {}),
            }
            for job, path in JOBS.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def targets_file(targets_dir: Path, job: str) -> Path:
    """The file_sd JSON file for `job`."""
    return targets_dir / f"{job}.json"


def write_targets(targets_dir: Path, targets: Sequence[ScrapeTarget]) -> None:
    """Write every job's file_sd file (an empty list when a job has no targets), each atomically."""
    addresses = [(t.job, t.address) for t in targets]
    duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
    if duplicates:
        raise ConfigError(f"the same target is listed twice: {duplicates}", field="targets")
    for job in JOBS:
        groups = [
            {"targets": [t.address], "labels": dict(sorted(t.labels.items()))}
            for t in sorted(targets, key=lambda t: t.address)
            if t.job == job
        ]
        # Prometheus re-reads the file on every inotify event: it must never see a half-written file.
        atomic_write(targets_file(targets_dir, job), json.dumps(groups, indent=2) + "\n", mode=0o644, durable=False)


def prometheus_argv(*, binary: str, config_path: Path, data_dir: Path, port: int) -> list[str]:
    """The command line: 127.0.0.1 only, short retention. No lifecycle or admin API: targets come by
    file_sd and the process is stopped by its PID, so no local process may quit it or delete its data."""
    return [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


def find_binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool` on PATH, or MissingDependencyError saying how to get them."""
    found = []
    for name in ("prometheus", "promtool"):
        path = shutil.which(name)
        if path is None:
            raise MissingDependencyError(
                f"{name} not found on PATH: install it with `apt-get install prometheus` (Debian/Ubuntu, "
                f"provides prometheus and promtool; `make setup` does this), or put the official "
                f"release's {name} binary on PATH"
            )
        found.append(path)
    return found[0], found[1]


def _duration(milliseconds: int) -> str:
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"
