"""Locust master and workers as pods in the kind cluster (`--workers N --in-cluster`), rendered per run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.platforms.kind import render

MAX_WORKERS = 64  # a kind node is one machine; beyond this the workers only contend for its cores
MAX_CONFIGMAP_BYTES = 900_000  # the API server refuses ConfigMaps over 1 MiB; keep a margin
LOCUSTFILES_MOUNT = "/mnt/locust"


@dataclass(frozen=True)
class InClusterLoad:
    """One in-cluster Locust run: what to run, how many users, how many workers, for how long."""

    locustfile: Path  # its folder's *.py files go into the ConfigMap (the shipped one imports shapes.py)
    users: int = 10
    spawn_rate: float = 10.0  # users started per second
    workers: int = 1
    run_time_s: int = 60
    env: Mapping[str, str] = field(default_factory=dict)  # HARNESS_THINK_TIME, HARNESS_TIER_WEIGHTS, ...

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"expected 1 to {MAX_WORKERS} workers, got {self.workers}", field="workers")
        if self.users < 1 or self.spawn_rate <= 0 or self.run_time_s < 1:
            raise ConfigError(f"expected users >= 1, spawn_rate > 0 and run_time_s >= 1, got {self.users}, "
                              f"{self.spawn_rate}, {self.run_time_s}", field="load")
        if self.locustfile.suffix != ".py" or not self.locustfile.is_file():
            raise ConfigError(f"expected a Locust .py file, got {self.locustfile}", field="locustfile")


def locust_documents(load: InClusterLoad) -> list[dict]:
    """The ConfigMap of locustfiles, the master (Deployment and Service) and the workers."""
    configmap, master, service, worker = render.template("locust/locust.yaml")
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(load.locustfile.parent.glob("*.py"))}
    if sum(len(text.encode()) for text in files.values()) > MAX_CONFIGMAP_BYTES:
        raise ConfigError(f"the .py files beside {load.locustfile} exceed {MAX_CONFIGMAP_BYTES} bytes, too much for "
                          "one ConfigMap; keep the locustfile in a folder of its own", field="locustfile")
    configmap["data"] = files
    script = f"{LOCUSTFILES_MOUNT}/{load.locustfile.name}"
    env = [{"name": "HARNESS_INGRESS_HOST", "value": "ai-agent-service.parallel-ai.svc.cluster.local"}]
    env += [{"name": name, "value": str(value)} for name, value in sorted(load.env.items())
            if name != "HARNESS_INGRESS_HOST"]
    (master_container,) = master["spec"]["template"]["spec"]["containers"]
    master_container["args"] = ["-f", script, "--master", "--headless", "--host",
                                f"http://127.0.0.1:{render.INGRESS_NODE_PORT}", "--users", str(load.users),
                                "--spawn-rate", f"{load.spawn_rate:g}", "--run-time", f"{load.run_time_s}s",
                                "--expect-workers", str(load.workers), "--csv", "/tmp/locust"]
    master_container["env"] = env
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    worker_container["args"] = ["-f", script, "--worker", "--master-host",
                                "locust-master.parallel-ai.svc.cluster.local"]
    worker_container["env"] = env
    worker["spec"]["replicas"] = load.workers
    return [configmap, master, service, worker]
