"""Helpers of the local-mesh tests: free port blocks, settings, and a handle on a running mesh."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.platforms.local.platform import LocalPlatform
from harness.platforms.local.settings import LocalSettings

# Below Linux's ephemeral range (32768-60999), where load's client sockets would collide; above the
# default mesh's 21000 block, so a developer's own mesh does not collide either. `make test` runs two
# live pytest processes at once and gives each its own half (HARNESS_TEST_PORT_BASES="first-last"), so
# two meshes starting together never pick the same free block.
_FIRST, _, _LAST = os.environ.get("HARNESS_TEST_PORT_BASES", "22000-31000").partition("-")
PORT_BASES = range(int(_FIRST), int(_LAST) + 1, 1000)


def free_base() -> int:
    """A base port whose whole block (pods, ingress, Prometheus) is free on 127.0.0.1."""
    for base in PORT_BASES:
        ports = [base + offset for offset in range(0, 80)] + [base + 900, base + 950, base + 960, base + 980, base + 990]
        if all(_free(port) for port in ports):
            return base
    raise RuntimeError("no free block of ports for a test mesh")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Envoy binds: TIME_WAIT is no conflict
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_for(state_dir: Path, base: int, **extra: Any) -> LocalSettings:
    return LocalSettings(state_dir=state_dir, base_port=base, ingress_port=base + 980,
                         prometheus_port=base + 990, ai_latency_ms=2, **extra)


@dataclass
class Mesh:
    platform: LocalPlatform
    status: dict[str, Any]
    client: httpx.Client

    @property
    def ingress(self) -> str:
        return self.status["ingress_url"]

    def pod(self, name: str) -> dict[str, Any]:
        return next(p for p in self.platform.status()["pods"] if p["name"] == name)

    def chat(self, headers: dict[str, str] | None = None, user: str = "u1") -> httpx.Response:
        return self.client.post(f"{self.ingress}/api/v1/chat",
                                headers={"host": self.status["ingress_host"], **(headers or {})},
                                json={"user_id": user, "prompt": "hello"})

    def knobs(self, pod: str, **values: Any) -> None:
        self.platform.set_knobs(pod, **values)  # over the app's socket, with the run's token

    def reset_knobs(self) -> None:
        for pod in self.status["pods"]:
            self.knobs(pod["name"], latency_ms=0, error_rate=0.0, error_status=500, hang=False)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")

    def all_ready(self) -> bool:
        return all(p["ready"] for p in self.platform.status()["pods"])

    def clear_outlier_state(self) -> None:
        """Re-create the ai-agent clusters (a changed DestinationRule, then the declared one), which
        forgets outlier ejections: a test that made pods answer 5xx must not leave them ejected."""
        shipped = Path(__file__).parents[2] / "harness/mesh/manifests/istio/destination-rules.yaml"
        rule = next(d for d in yaml.safe_load_all(shipped.read_text())
                    if d and d["metadata"]["name"] == "ai-agent-destination")
        rule["spec"]["trafficPolicy"]["outlierDetection"]["interval"] = "29s"
        self.platform.apply_documents([rule])
        self.platform.reset()




def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
