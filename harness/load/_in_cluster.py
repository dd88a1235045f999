"""InClusterLoadRun: a LoadSpec run by Locust inside the kind cluster (`harness run --in-cluster`).

The same run as LoadRun's, from inside the cluster: the master (or the one standalone process) and the
workers are Jobs (harness/platforms/kind/load.py), given the same Locust options and HARNESS_* environment
(_command.py) with /out as their run directory, and the recorder plugin beside the locustfile. The
harness reads `started` and `live.jsonl` from the master while the run goes on, and at the end copies the
master's CSVs (locust_stats*.csv), samples and log, and each worker's samples and log, into the run
directory under the names a local run uses (a worker's samples-<pid>.csv becomes samples-w<i>-<pid>.csv:
pids repeat across pods). Then the Jobs, the Service and the ConfigMap are deleted, whatever happened;
the Jobs' activeDeadlineSeconds and ttlSecondsAfterFinished are the cluster's own backstop if the harness
itself is killed. No process of it runs on this machine: `pids` is empty.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import HarnessError, LoadError
from harness.files import atomic_write
from harness.load import _command
from harness.load._live import LivePoint
from harness.load._run import RunOutputs
from harness.load._spec import LoadSpec
from harness.platforms.kind.load import MASTER_JOB, MASTER_PORT, MOUNT, OUT, InClusterLoad, master_host

logger = logging.getLogger("harness.load")
PLUGIN_KEY = "harness_locust_plugin.py"
POLL_S = 1.0
COLLECT_WAIT_S = 30.0  # after SIGTERM, how long the master may take to stop its workers and write its CSVs
HARNESS_DIR = Path(__file__).resolve().parents[1]
INGRESS_NODE_URL = "http://127.0.0.1:30080"  # the ingress gateway's node port, from the node's network


def in_cluster_load(spec: LoadSpec) -> InClusterLoad:
    """What the Jobs run: the locustfile's folder, the recorder plugin and the harness modules it imports;
    the options of _command.master_argv/worker_argv with the pods' paths; child_env's environment."""
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(spec.locustfile.parent.glob("*.py"))}
    files[PLUGIN_KEY] = _command.PLUGIN.read_text(encoding="utf-8")
    files["harness-init.py"] = (HARNESS_DIR / "__init__.py").read_text(encoding="utf-8")
    files["harness-files.py"] = (HARNESS_DIR / "files.py").read_text(encoding="utf-8")
    local = _command.master_argv(spec, Path(OUT), MASTER_PORT if spec.workers else None)
    options = local[local.index("-f") + 2:]  # after `python -m locust -f <files>`
    options[options.index("--host") + 1] = INGRESS_NODE_URL
    options[options.index("--csv") + 1] = f"{OUT}/locust"
    if spec.workers:  # the master listens on the node (hostNetwork); workers find it by its Service
        options[options.index("--master-bind-host") + 1] = "0.0.0.0"  # noqa: S104 -- inside the pod's node only
    locustfiles = f"{MOUNT}/{spec.locustfile.name},{MOUNT}/{PLUGIN_KEY}"
    env = _command.child_env(spec, Path(OUT), base={})
    env[_command.ENV_PARENT_PID] = "0"  # no harness process in the pod to watch; the deadline bounds the run
    env.pop(_command.ENV_TARGET_FILE, None)  # capacity steps write a local file: not in the cluster
    env["HARNESS_INGRESS_HOST"] = spec.host_header or env.get("HARNESS_INGRESS_HOST", "")
    deadline = int(float(env[_command.ENV_DEADLINE_S]))
    return InClusterLoad(files=files, locustfile=spec.locustfile.name, master_args=("-f", locustfiles, *options),
                         worker_args=("-f", locustfiles, "--worker", "--master-host", master_host(),
                                      "--master-port", str(MASTER_PORT)),
                         env=env, workers=spec.workers, deadline_s=deadline)


class InClusterLoadRun(RunOutputs):
    """LoadRun's interface over the in-cluster Jobs of a kind platform (`platform.in_cluster`)."""

    def __init__(self, spec: LoadSpec, platform: Any, *, before_start: Callable[[], None] | None = None,
                 after_removal: Callable[[], None] | None = None) -> None:
        """`before_start` runs before anything is applied, `after_removal` once the Jobs are deleted (the
        run layer records the load in the fault ledger with them, so a killed run's Jobs are removed too)."""
        self.spec = spec
        self.platform = platform
        self._before_start, self._after_removal = before_start, after_removal
        self._run_dir: Path | None = None
        self._stopped = False
        self.collected: list[str] = []  # the files copied into the run directory

    @property
    def pids(self) -> tuple[int, ...]:
        return ()  # nothing runs on this machine

    def start(self, run_dir: Path) -> None:
        if self._run_dir is not None:
            raise LoadError("this load run was already started; make a new InClusterLoadRun")
        run_dir = Path(run_dir).absolute()
        run_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir = run_dir
        load = in_cluster_load(self.spec)  # bad input fails here, before anything is recorded or applied
        if self._before_start is not None:
            self._before_start()
        self.platform.start_in_cluster_load(load)

    def _master(self, script: str) -> Any:
        return self.platform.in_cluster_exec(f"job/{MASTER_JOB}", script)

    def wait_started(self, timeout_s: float = 30.0) -> None:
        """Until the master's recorder wrote `started` (users run); LoadError if Locust ended or time ran out."""
        if self.platform.runner.dry_run:
            self._master(f"cat {OUT}/started")
            return
        deadline = time.monotonic() + timeout_s
        while True:
            result = self._master(f"cat {OUT}/started || {{ cat {OUT}/exit-code 2>/dev/null && exit 9; exit 1; }}")
            if result.returncode == 0:
                atomic_write(self.run_dir / "started", result.stdout.encode())
                return
            if result.returncode == 9:
                raise LoadError(f"Locust in the cluster exited with code {result.stdout.strip()} before the load "
                                f"started; its log ends with:\n{self._master_log_tail()}")
            if time.monotonic() > deadline:
                raise LoadError(f"Locust in the cluster did not start the load within {timeout_s} s "
                                f"({result.stderr.strip()[-300:] or 'no started marker'})")
            time.sleep(POLL_S)

    def _master_log_tail(self) -> str:
        return self._master(f"tail -c 2000 {OUT}/locust.log").stdout

    @property
    def running(self) -> bool:
        """True while Locust runs in the master pod (False once it ended, or when the pod is gone)."""
        if self._stopped:
            return False
        result = self._master(f"if [ -e {OUT}/done ]; then echo done; else echo running; fi")
        return result.returncode == 0 and result.stdout.strip() == "running"

    def live(self) -> LivePoint | None:
        result = self._master(f"cat {OUT}/live.jsonl")
        if result.returncode == 0 and result.stdout:
            atomic_write(self.run_dir / "live.jsonl", result.stdout.encode())
        return super().live()

    def wait(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while self.running:
            if time.monotonic() > deadline:
                raise LoadError(f"Locust in the cluster still running after {timeout_s} s")
            time.sleep(POLL_S)
        code = self._master(f"cat {OUT}/exit-code").stdout.strip()
        return int(code) if code.isdigit() else 1

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM Locust in the master (it stops its workers and writes its stats), copy every pod's files
        into the run directory, then delete the Jobs whatever happened. Safe to call again."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._master(f"kill -TERM $(cat {OUT}/locust.pid) 2>/dev/null; true")
            deadline = time.monotonic() + max(grace_s, COLLECT_WAIT_S)
            while not self.platform.runner.dry_run and time.monotonic() < deadline:
                if self._master(f"test -e {OUT}/done").returncode == 0 or self._pod_gone():
                    break
                time.sleep(POLL_S)
            self._collect()
        finally:
            self.platform.stop_in_cluster_load()
            if self._after_removal is not None:
                self._after_removal()

    def _pod_gone(self) -> bool:
        return not self.platform.in_cluster_pods("master")

    def _collect(self) -> None:
        """Every file a local run leaves, from the master and each worker (a missing pod is skipped)."""
        if self._run_dir is None or self.platform.runner.dry_run:
            self._master(f"tar cf - -C {OUT} . | base64")
            return
        master = self._archive(f"job/{MASTER_JOB}")
        self.collected += self._unpack(master, lambda name: name if name not in ("locust.pid", "exit-code", "done")
                                       else None)
        for index, pod in enumerate(self.platform.in_cluster_pods("worker")):
            def rename(name: str, index: int = index) -> str | None:
                if name.startswith("samples-") and name.endswith(".csv"):
                    return f"samples-w{index}-{name.removeprefix('samples-')}"
                return f"locust-worker-{index}.log" if name == "locust.log" else None
            self.collected += self._unpack(self._archive(pod), rename)

    def _archive(self, target: str) -> bytes | None:
        result = self.platform.in_cluster_exec(target, f"tar cf - -C {OUT} . | base64")
        if result.returncode != 0:
            return None
        try:
            return base64.b64decode(result.stdout)
        except (binascii.Error, ValueError):
            return None

    def _unpack(self, data: bytes | None, rename: Callable[[str], str | None]) -> list[str]:
        if not data:
            return []
        written = []
        with tempfile.TemporaryDirectory(prefix="harness-in-cluster-") as folder, \
                tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(folder, filter="data")  # no absolute paths, links or devices
            for path in sorted(Path(folder).rglob("*")):
                target = rename(path.name) if path.is_file() else None
                if target:
                    atomic_write(self.run_dir / target, path.read_bytes())
                    written.append(target)
        return written

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        except HarnessError as stop_error:
            if exc is None:
                raise
            # the error in flight is the one to report; this one travels with it instead of vanishing
            exc.add_note(f"and stopping the in-cluster load failed too: {stop_error}")
            logger.error("stopping the in-cluster load failed: %s", stop_error)
