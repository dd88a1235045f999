"""Locust master and workers as Jobs in the kind cluster (`--in-cluster`): the documents of one run.

harness/load/_in_cluster.py decides what Locust runs (the same options and environment a local run
gives its processes) and hands it over as an `InClusterLoad`; this module renders the ConfigMap, the
master Job and Service and the workers' Job from ../../mesh/manifests/kind/locust/locust.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.errors import ConfigError
from harness.platforms.kind import render

MAX_WORKERS = 64  # a kind node is one machine; beyond this the workers only contend for its cores
MAX_CONFIGMAP_BYTES = 900_000  # the API server refuses ConfigMaps over 1 MiB; keep a margin
MOUNT = "/mnt/locust"  # the ConfigMap's files (PYTHONPATH, so the plugin's `import harness.files` works)
OUT = "/out"  # each pod's run directory (an emptyDir), copied into the local run directory at the end
MASTER_JOB, WORKER_JOB, MASTER_SERVICE, CONFIGMAP = "locust-master", "locust-worker", "locust-master", "harness-load"
MASTER_PORT = 5557
KEEP_ALIVE_S = 3600  # the pod outlives Locust so that /out can be copied; the Job's deadline bounds it
JOB_MARGIN_S = 300  # activeDeadlineSeconds = the load's own deadline plus this
#: Runs Locust, records its pid and exit code, then keeps the pod (not Locust) for the copy of /out.
WRAPPER = (f'cd {OUT} && locust "$@" > {OUT}/locust.log 2>&1 & echo $! > {OUT}/locust.pid; '
           f'wait $!; echo $? > {OUT}/exit-code; touch {OUT}/done; sleep {KEEP_ALIVE_S}')


@dataclass(frozen=True)
class InClusterLoad:
    """One in-cluster Locust run, as the load layer prepared it."""

    files: Mapping[str, str]  # ConfigMap key -> text; keys with a `/` in PROJECTED are mounted at that path
    locustfile: str  # the key of the user's locustfile
    master_args: tuple[str, ...]  # Locust's options for the master (or the one standalone process)
    worker_args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 0  # 0: the master runs the users itself
    deadline_s: int = 3600  # how long the load may run at most (the Jobs' activeDeadlineSeconds adds a margin)

    def __post_init__(self) -> None:
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"expected 0 to {MAX_WORKERS} in-cluster workers, got {self.workers}", field="workers")
        size = sum(len(text.encode()) for text in self.files.values())
        if size > MAX_CONFIGMAP_BYTES:
            raise ConfigError(f"the locustfile folder and the recorder come to {size} bytes, more than one "
                              f"ConfigMap holds ({MAX_CONFIGMAP_BYTES}); keep the locustfile in a folder of its own",
                              field="locustfile")
        if self.locustfile not in self.files:
            raise ConfigError(f"the locustfile {self.locustfile!r} is not among the files", field="locustfile")


#: ConfigMap keys that are mounted under another path (the harness package the recorder plugin imports).
PROJECTED = {"harness-init.py": "harness/__init__.py", "harness-files.py": "harness/files.py"}


def locust_documents(load: InClusterLoad) -> list[dict]:
    """The ConfigMap, the master Job and its Service, and (with workers) the workers' Job."""
    configmap, master, service, worker = render.template("locust/locust.yaml")
    configmap["data"] = dict(sorted(load.files.items()))
    env = [{"name": name, "value": str(value)} for name, value in sorted(load.env.items())]
    env.append({"name": "PYTHONPATH", "value": MOUNT})
    for job, args in ((master, load.master_args), (worker, load.worker_args)):
        job["spec"]["activeDeadlineSeconds"] = load.deadline_s + JOB_MARGIN_S
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        container["command"] = ["sh", "-c", WRAPPER, "locust"]
        container["args"] = list(args)
        container["env"] = env
        (volume, _) = pod["volumes"]
        volume["configMap"]["items"] = [{"key": key, "path": PROJECTED.get(key, key)} for key in sorted(load.files)]
    worker["spec"]["parallelism"] = worker["spec"]["completions"] = max(load.workers, 1)
    return [configmap, master, service] + ([worker] if load.workers else [])


def master_host() -> str:
    return f"{MASTER_SERVICE}.{render.NAMESPACE}.svc.cluster.local"
