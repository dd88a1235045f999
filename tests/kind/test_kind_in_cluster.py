"""Load from inside the cluster (issue 11, point 4): `harness run --platform kind --in-cluster --workers N`.

No cluster here, so the Jobs' containers are played on this machine by `LocalPods`: the ConfigMap's files
are written out with their projected paths, and each container's command (the wrapper shell, Locust's
options and environment exactly as rendered, with /out and /mnt/locust mapped to folders) runs as a
process; `kubectl exec ... sh -c SCRIPT` runs SCRIPT against the same folders. So the recorder plugin,
the harness modules the ConfigMap carries, the wrapper and the collection (tar | base64) are exercised
for real; only Kubernetes itself (scheduling, the Service, hostNetwork) is not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser, platform_options
from harness.errors import LoadError
from harness.load._in_cluster import PLUGIN_KEY, InClusterLoadRun, in_cluster_load
from harness.load._samples import samples_frame
from harness.platforms.kind import CommandResult, KindPlatform, KindSettings
from harness.platforms.kind.load import MOUNT, OUT, PROJECTED, WRAPPER, InClusterLoad, locust_documents, master_host
from harness.platforms.kind.validation import validate_kind_document
from harness.run.settings import LoadSettings
from harness.net import free_port
from tests.load.loadkit import ChatTarget, chat_spec

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def target() -> ChatTarget:
    server = ChatTarget().start()
    yield server
    server.stop()


class LocalPods:
    """The platform side of an in-cluster run (start_in_cluster_load, in_cluster_exec, in_cluster_pods,
    stop_in_cluster_load, runner.dry_run) with the pods as local process groups, stopped by their pids."""

    class _Runner:
        dry_run = False

    ledger_dir = None  # keeps no fault ledger (harness.chaos.ledger.ledger_for)
    dry_run = False

    def __init__(self, root: Path, target_url: str) -> None:
        self.root, self.target_url = root, target_url
        self.runner = self._Runner()
        self.pods: dict[str, subprocess.Popen[bytes]] = {}
        self.gone: dict[str, subprocess.Popen[bytes]] = {}  # the pods of deleted Jobs
        self.load: InClusterLoad | None = None
        self.deleted = 0
        self.port = free_port()

    def _map(self, text: str, pod: str) -> str:
        return (text.replace(OUT, str(self.root / pod / "out")).replace(MOUNT, str(self.root / "mnt"))
                .replace("http://127.0.0.1:30080", self.target_url).replace(master_host(), "127.0.0.1")
                .replace("5557", str(self.port)))

    def start_in_cluster_load(self, load: InClusterLoad) -> dict:
        self.load = load
        for key, text in load.files.items():
            path = self.root / "mnt" / PROJECTED.get(key, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        roles = [("master", load.master_args)] + [(f"worker-{i}", load.worker_args) for i in range(load.workers)]
        for pod, args in roles:
            (self.root / pod / "out").mkdir(parents=True)
            env = {name: self._map(value, pod) for name, value in load.env.items()}
            env.update(PATH=f"{VENV_BIN}:/usr/bin:/bin", PYTHONPATH=str(self.root / "mnt"), HOME=str(self.root))
            self.pods[pod] = subprocess.Popen(["sh", "-c", self._map(WRAPPER, pod), "locust",
                                               *(self._map(a, pod) for a in args)],
                                              env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL)
        return {}

    def in_cluster_exec(self, target: str, script: str) -> CommandResult:
        pod = "master" if target == "job/locust-master" else target
        if pod not in self.pods:
            return CommandResult(None, 1, "", f'Error from server (NotFound): pods "{pod}" not found')  # type: ignore[arg-type]
        done = subprocess.run(["sh", "-c", self._map(script, pod)], capture_output=True, text=True, timeout=60,
                              check=False)
        return CommandResult(None, done.returncode, done.stdout, done.stderr)  # type: ignore[arg-type]

    def in_cluster_pods(self, role: str) -> list[str]:
        return sorted(pod for pod in self.pods if pod.startswith(role))

    def stop_in_cluster_load(self) -> None:
        self.deleted += 1
        for process in self.pods.values():  # deleting the Job kills its pod: the process group, by its pid
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.gone.update(self.pods)
        self.pods.clear()


def test_a_run_in_the_cluster_leaves_the_files_a_local_run_leaves_and_removes_its_jobs(
        target: ChatTarget, tmp_path: Path) -> None:
    spec = chat_spec(target, users=2, workers=1, duration_s=60)
    pods = LocalPods(tmp_path / "cluster", target.url)
    run_dir = tmp_path / "run"
    with InClusterLoadRun(spec, pods) as load:
        load.start(run_dir)
        load.wait_started(60)
        assert (run_dir / "started").is_file() and load.running
        deadline = time.monotonic() + 30
        while (point := load.live()) is None or point.requests < 10:
            assert time.monotonic() < deadline, "no live line with requests from the master"
            time.sleep(0.5)
        assert load.pids == ()
    # stop() ran on leaving the block: Locust got SIGTERM, its files were copied, the Jobs deleted.
    assert pods.deleted == 1 and pods.gone and all(p.poll() is not None for p in pods.gone.values())
    names = set(load.collected)
    assert {"started", "live.jsonl", "locust_stats.csv", "locust.log", "locust-worker-0.log"} <= names
    assert any(n.startswith("samples-w0-") and n.endswith(".csv") for n in names)
    frame = samples_frame(run_dir)
    assert len(frame) >= 10 and set(frame["status"]) >= {200}
    stats = load.stats()
    assert stats.locust.total.requests >= len(frame) - 10  # Locust's own count, from the master's CSV
    assert not any(run_dir.glob("exit-code")) and not any(run_dir.glob("locust.pid"))
    load.stop()  # again: nothing more happens
    assert pods.deleted == 1


def test_a_locust_that_exits_before_the_users_start_is_a_load_error_with_its_log(tmp_path: Path) -> None:
    target = ChatTarget().start()
    try:
        spec = chat_spec(target, users=2, duration_s=30)
        pods = LocalPods(tmp_path / "cluster", target.url)
        load = InClusterLoadRun(spec, pods)
        original = in_cluster_load(spec)
        broken = InClusterLoad(files={**original.files, PLUGIN_KEY: "raise SystemExit('broken plugin')\n"},
                               locustfile=original.locustfile, master_args=original.master_args,
                               worker_args=original.worker_args, env=original.env, deadline_s=original.deadline_s)
        load._run_dir = tmp_path / "run"
        (tmp_path / "run").mkdir()
        pods.start_in_cluster_load(broken)
        with pytest.raises(LoadError, match="exited with code .* before the load started; its log ends with"):
            load.wait_started(30)
        load.stop()
        assert pods.deleted == 1
    finally:
        target.stop()


def test_the_jobs_validate_and_never_run_the_load_twice(target: ChatTarget) -> None:
    spec = chat_spec(target, users=5, workers=2, duration_s=60)
    docs = locust_documents(in_cluster_load(spec))
    for index, doc in enumerate(docs):
        validate_kind_document(doc, source="locust", index=index)
    configmap, master, service, worker = docs
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Service", "Job"]
    for job in (master, worker):
        assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["activeDeadlineSeconds"] > 60 and job["spec"]["ttlSecondsAfterFinished"] > 0
    assert worker["spec"]["parallelism"] == worker["spec"]["completions"] == 2
    args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--expect-workers") + 1] == "2" and args[args.index("--csv") + 1] == "/out/locust"
    assert args[args.index("--host") + 1] == "http://127.0.0.1:30080"  # the ingress node port, from the node
    assert "--csv-full-history" in args and args[args.index("-u") + 1] == "5"
    env = {e["name"]: e["value"] for e in master["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HARNESS_LOAD_RUN_DIR"] == "/out" and env["HARNESS_LOAD_PARENT_PID"] == "0"
    assert env["PYTHONPATH"] == MOUNT and "HARNESS_LOAD_TARGET_FILE" not in env
    items = {i["key"]: i["path"] for i in master["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]}
    assert items["harness-files.py"] == "harness/files.py" and items["ai_agent.py"] == "ai_agent.py"
    assert sorted(configmap["data"]) == sorted(items)
    assert all(d["metadata"]["namespace"] == "parallel-ai" for d in docs)
    assert locust_documents(in_cluster_load(chat_spec(target, users=2)))[-1]["kind"] == "Service"  # no workers


def test_a_dry_run_shows_every_step_of_an_in_cluster_run(target: ChatTarget, tmp_path: Path) -> None:
    platform = KindPlatform(KindSettings(dry_run=True, in_cluster=True))
    assert platform.in_cluster
    load = InClusterLoadRun(chat_spec(target, users=2, workers=1), platform)
    load.start(tmp_path / "run")
    load.wait_started()
    load.stop()
    steps = [s.replace("kubectl --context kind-parallel-ai ", "") for s in platform.steps if s.startswith("$ ")]
    delete = ("$ -n parallel-ai delete job/locust-master job/locust-worker service/locust-master "
              "configmap/harness-load --ignore-not-found --cascade=foreground")
    assert steps[0] == delete  # a leftover of a killed run goes first
    assert steps[1] == ("$ apply --server-side --field-manager=harness --force-conflicts -f - <<< ConfigMap "
                        "parallel-ai/harness-load, Job parallel-ai/locust-master, Service parallel-ai/locust-master, "
                        "Job parallel-ai/locust-worker")
    execs = [s.split(" -- sh -c ", 1)[1] for s in steps if " exec job/locust-master -c locust -- sh -c " in s]
    assert execs[0].endswith("/out/started'") and "kill -TERM" in execs[1] and "tar cf - -C /out ." in execs[2]
    assert steps[-1] == delete


def test_in_cluster_is_a_flag_and_a_variable_and_reaches_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["run", "experiments/pod-kill.yaml", "--platform", "kind", "--in-cluster",
                                      "--workers", "2", "--context", "kind-staging", "--no-create",
                                      "--allow-context", "kind-staging", "--max-percent", "25"])
    options = platform_options(args)
    assert options["in_cluster"] is True and options["no_create"] is True and options["max_percent"] == 25.0
    settings = KindPlatform.from_env(**options).settings
    assert (settings.in_cluster, settings.no_create, settings.context, settings.max_percent) == (
        True, True, "kind-staging", 25.0)
    monkeypatch.setenv("HARNESS_IN_CLUSTER", "1")
    monkeypatch.setenv("HARNESS_NO_CREATE", "yes")
    monkeypatch.setenv("HARNESS_CONTEXT", "kind-other")
    from_env = KindSettings.from_env()
    assert (from_env.in_cluster, from_env.no_create, from_env.context) == (True, True, "kind-other")
    plain = platform_options(build_parser().parse_args(["run", "x.yaml", "--platform", "kind"]))
    assert plain["in_cluster"] is None  # unset: the environment decides


def test_the_run_starts_the_in_cluster_load_when_the_platform_says_so(target: ChatTarget, tmp_path: Path) -> None:
    """harness.run.evaluation.start_load hands the spec to InClusterLoadRun for a platform with in_cluster."""
    from harness.run import evaluation

    pods = LocalPods(tmp_path / "cluster", target.url)
    pods.in_cluster = True  # type: ignore[attr-defined]
    pods.status = lambda: {"ingress_url": target.url,  # type: ignore[attr-defined]
                           "ingress_host": "ai-agent-service.parallel-ai.svc.cluster.local"}
    load = LoadSettings(locustfile=Path(chat_spec(target, users=1).locustfile), users=1, spawn_rate=1.0)
    run = evaluation.start_load(load, pods, tmp_path / "run")
    try:
        assert isinstance(run, InClusterLoadRun) and pods.load is not None and run.spec.users == 1
    finally:
        run.stop()
    assert pods.deleted == 1


def test_the_in_cluster_load_is_in_the_fault_ledger_while_its_jobs_exist(target: ChatTarget, tmp_path: Path) -> None:
    """A run killed while its Locust Jobs run leaves a `load` entry; its undo (any process: the next run,
    `up`, `harness reset`) deletes the Jobs through the platform."""
    from harness.chaos.ledger import FaultLedger
    from harness.run.in_cluster import in_cluster_load_run

    pods = LocalPods(tmp_path / "cluster", target.url)
    pods.ledger_dir = tmp_path / "ledger"  # type: ignore[attr-defined]
    ledger = FaultLedger(tmp_path / "ledger")
    run = in_cluster_load_run(chat_spec(target, users=1, duration_s=60), pods)
    run.start(tmp_path / "run")
    try:
        (entry,) = ledger.entries()
        assert entry.kind == "load" and pods.deleted == 0
        ledger.undo_entry(entry, pods)  # what another process does with an orphan
        assert pods.deleted == 1 and ledger.entries() == []
        assert pods.gone and all(p.poll() is not None for p in pods.gone.values())
    finally:
        run.stop()
    assert ledger.entries() == []


def test_the_platform_side_against_the_emulated_api_server(cluster, runner, target: ChatTarget) -> None:
    """start_in_cluster_load (leftovers deleted first, then one server-side apply), in_cluster_pods (asked
    of the API server by label), in_cluster_exec and stop_in_cluster_load, on kmock."""
    from tests.kind.kindkit import make_platform

    platform = make_platform({cluster.context: cluster}, runner)
    for index, role in enumerate(("master", "worker", "worker")):
        cluster.put("v1/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"locust-{role}-{index}", "namespace": "parallel-ai", "labels": {"app": "locust", "role": role}}})
    cluster.put("v1/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "other-worker", "namespace": "parallel-ai", "labels": {"app": "other", "role": "worker"}}})
    assert platform.in_cluster_pods("worker") == ["locust-worker-1", "locust-worker-2"]
    assert any(r.params.get("labelSelector") == "app=locust,role=worker" for r in cluster.requests("GET"))
    platform.start_in_cluster_load(in_cluster_load(chat_spec(target, users=2, workers=1)))
    delete, apply = runner.commands
    assert delete.argv[:6] == ("kubectl", "--context", "kind-parallel-ai", "-n", "parallel-ai", "delete")
    assert apply.argv[3:5] == ("apply", "--server-side") and "Job parallel-ai/locust-worker" in apply.stdin_summary
    docs = list(yaml.safe_load_all(apply.stdin))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job", "Service", "Job"]
    platform.in_cluster_exec("locust-worker-1", "true")
    assert runner.commands[-1].argv[5:] == ("exec", "locust-worker-1", "-c", "locust", "--", "sh", "-c", "true")
    platform.stop_in_cluster_load()
    assert runner.commands[-1].argv[6:10] == ("job/locust-master", "job/locust-worker", "service/locust-master",
                                              "configmap/harness-load")


def test_a_failed_stop_travels_with_the_error_in_flight_instead_of_vanishing() -> None:
    """Leaving the run's `with` on an exception, a stop that fails too is attached to that exception as a
    note (and logged), so neither cause is lost; without an exception in flight the stop's error is raised."""
    from harness.errors import LoadError
    from harness.load._in_cluster import InClusterLoadRun

    run = object.__new__(InClusterLoadRun)

    def stop() -> None:
        raise LoadError("the locust master Job could not be deleted")

    run.stop = stop  # type: ignore[method-assign]
    with pytest.raises(RuntimeError) as caught:
        with run:
            raise RuntimeError("the run failed")
    assert any("could not be deleted" in note for note in caught.value.__notes__)
    with pytest.raises(LoadError):
        with run:
            pass
