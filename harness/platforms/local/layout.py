"""Where every local pod, proxy and file lives: ports on 127.0.0.1 and paths under the state dir."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, PortInUseError
from harness.mesh.topology import GATEWAY_SERVICE_ACCOUNT, Pod, Topology
from harness.platforms.local.settings import LocalSettings

GATEWAY_REGION = "us-east"
EXTERNAL_NAME = "external-ai-api-0"


@dataclass(frozen=True)
class PodPorts:
    app: int
    inbound: int
    outbound: int
    admin: int


@dataclass(frozen=True)
class Layout:
    """Deterministic ports and paths for a topology under one settings object."""

    settings: LocalSettings
    pods: dict[str, PodPorts]
    gateway_admin_port: int
    external_port: int
    trace_port: int  # the platform's OTLP/HTTP receiver (when OTEL_EXPORTER_OTLP_ENDPOINT is unset)

    @classmethod
    def plan(cls, settings: LocalSettings, topology: Topology) -> "Layout":
        base = settings.base_port
        pods = {
            pod.name: PodPorts(app=base + 10 * i, inbound=base + 10 * i + 1,
                               outbound=base + 10 * i + 2, admin=base + 10 * i + 3)
            for i, pod in enumerate(topology.pods)
        }
        return cls(settings=settings, pods=pods, gateway_admin_port=base + 900, external_port=base + 950,
                   trace_port=base + 960)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    def proxy_dir(self, proxy: str) -> Path:
        return self.state_dir / "proxies" / proxy

    def log_path(self, process: str) -> Path:
        return self.state_dir / "logs" / f"{process.replace('/', '.')}.log"

    def all_ports(self) -> list[tuple[int, str]]:
        """Every port the mesh binds, with what it is for (for up-front conflict checks)."""
        ports = [(self.settings.ingress_port, "ingress gateway"), (self.settings.prometheus_port, "prometheus"),
                 (self.gateway_admin_port, "ingress gateway admin"), (self.external_port, "external AI API"),
                 (self.trace_port, "OTLP trace receiver")]
        for name, p in self.pods.items():
            ports += [(p.app, f"{name} app"), (p.inbound, f"{name} sidecar inbound"),
                      (p.outbound, f"{name} sidecar outbound"), (p.admin, f"{name} sidecar admin")]
        return ports

    def check_ports_free(self) -> None:
        """Raise on overlapping settings or the first taken port, before anything is started."""
        seen: dict[int, str] = {}
        for port, purpose in self.all_ports():
            if port in seen:
                raise ConfigError(f"port {port} is planned for both {seen[port]} and {purpose}; move "
                                  "HARNESS_BASE_PORT, HARNESS_INGRESS_PORT or HARNESS_PROMETHEUS_PORT apart",
                                  field="base_port")
            seen[port] = purpose
        for port, purpose in self.all_ports():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise PortInUseError(port, purpose) from exc


def gateway_service_account() -> str:
    return GATEWAY_SERVICE_ACCOUNT


def pod_region(pod: Pod) -> str:
    return pod.region
