"""The Platform protocol: what every platform offers the CLI and the experiment runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Platform(Protocol):
    name: str

    def up(self, *, profile: str = "dev") -> dict[str, Any]:
        """Stand up the whole mesh and return its status once everything is ready."""

    def down(self) -> list[int]:
        """Stop everything this platform started; returns the PIDs it stopped."""

    def status(self) -> dict[str, Any]:
        """platform, ingress_url, prometheus_url and pods (see the README for the fields)."""

    def apply(self, files: list[Path], *, delete: bool = False) -> dict[str, Any]:
        """Apply (or delete) Istio resources live."""

    def reset(self) -> dict[str, Any]:
        """Return to the declared mesh."""

    def kill(self, pod: str, *, app_only: bool = False) -> dict[str, Any]:
        """SIGKILL a pod (or only its app); the platform restarts it as a ReplicaSet would."""
