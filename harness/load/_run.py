"""LoadRun: Locust headless in its own processes (standalone, or a master and N workers), stopped by PID."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from harness.errors import LoadError
from harness.load._command import MASTER_HOST, child_env, master_argv, worker_argv
from harness.load._cpu import CPU_FILE, CpuSampler
from harness.load._live import LivePoint, latest_live_point
from harness.load._samples import iter_samples, samples_frame
from harness.load._spec import LoadSpec
from harness.load._stats import LoadStats, read_locust_csv, samples_table
from harness.net import free_port
from harness.procfs import parent_death_signal

if TYPE_CHECKING:
    import pandas

POLL_S = 0.05
KILL_WAIT_S = 5.0  # after SIGKILL only a process stuck in the kernel takes longer
LOG_TAIL_BYTES = 2000
OUTPUTS = frozenset({"started", "samples.csv", "live.jsonl", "locust_stats.csv", CPU_FILE})  # plus samples-<pid>.csv


class RunOutputs:
    """What every load run reads back from its run directory, where Locust's files are under the names a
    local run writes (InClusterLoadRun copies its pods' files there first). Subclasses set `_run_dir` in
    start() and define stop()."""

    _run_dir: Path | None = None

    @property
    def run_dir(self) -> Path:
        """Where the run writes (set by start())."""
        if self._run_dir is None:
            raise LoadError("the load run has not been started")
        return self._run_dir

    def stats(self) -> LoadStats:
        """Locust's stats CSV and the samples' own summary (readable during the run too)."""
        return LoadStats(locust=read_locust_csv(self.run_dir / "locust_stats.csv"),
                         samples=samples_table(iter_samples(self.run_dir)))

    def samples(self) -> pandas.DataFrame:
        """Every request recorded (all workers merged), sorted by timestamp; columns SAMPLE_COLUMNS."""
        return samples_frame(self.run_dir)

    def live(self) -> LivePoint | None:
        """The latest line of the live feed, or None before the first."""
        return latest_live_point(self.run_dir / "live.jsonl")

    def stop(self, grace_s: float = 5.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LoadRun(RunOutputs):
    """One LoadSpec run. Use as a context manager so the processes are stopped whatever happens:

        with LoadRun(spec) as load:
            load.start(run_dir)
            load.wait(spec.duration_s + 30)
        load.stats(), load.samples()
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._run_dir: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._cpu: CpuSampler | None = None

    @property
    def pids(self) -> tuple[int, ...]:
        """Every process started, master (or standalone) first, then the workers."""
        return tuple(p.pid for p in self._processes())

    @property
    def running(self) -> bool:
        """True while any of the processes runs."""
        return any(p.poll() is None for p in self._processes())

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        return ([self._master] if self._master is not None else []) + self._workers

    def _spawn(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = open(log, "wb")  # noqa: SIM115 -- open for the process's life; stop() closes it
        self._logs.append(handle)
        # Own session: a Ctrl-C at the terminal reaches the harness only, which stops load by PID. And
        # the kernel kills Locust if the harness dies without stopping it (SIGKILL, OOM): no load may
        # outlive its run and hit the next one's mesh. Linux ties that to the forking thread, so only
        # from the main thread (where a run starts its load); another thread's exit would kill Locust.
        main = threading.current_thread() is threading.main_thread()
        on_death = parent_death_signal(signal.SIGKILL) if main else None
        return subprocess.Popen(argv, cwd=self.run_dir, env=env, stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=on_death)

    def start(self, run_dir: Path) -> None:
        """Start Locust writing into `run_dir` (created); returns at once, see wait_started()."""
        if self._master is not None:
            raise LoadError("this load run was already started; make a new LoadRun")
        run_dir = Path(run_dir).absolute()
        leftovers = sorted(p.name for p in run_dir.glob("*") if p.name in OUTPUTS or p.name.startswith("samples-"))
        if leftovers:
            raise LoadError(f"{run_dir} already holds a load run ({', '.join(leftovers)}); use a new directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir = run_dir
        env = child_env(self.spec, self._run_dir)
        port = free_port(MASTER_HOST) if self.spec.workers else None
        try:
            self._master = self._spawn(master_argv(self.spec, self._run_dir, port), env, self._run_dir / "locust.log")
            for index in range(self.spec.workers):
                assert port is not None
                log = self._run_dir / f"locust-worker-{index}.log"
                self._workers.append(self._spawn(worker_argv(self.spec, port), env, log))
        except OSError as exc:
            self.stop(grace_s=0)
            raise LoadError(f"could not start Locust: {exc}") from exc
        self._cpu = CpuSampler(self.roles, self._run_dir / CPU_FILE)
        self._cpu.start()

    def roles(self) -> dict[int, str]:
        """{pid: "standalone" | "master" | "worker-<n>"} of the processes started."""
        roles = {} if self._master is None else {self._master.pid: "master" if self._workers else "standalone"}
        roles.update({p.pid: f"worker-{i}" for i, p in enumerate(self._workers)})
        return roles

    def wait_started(self, timeout_s: float = 30.0) -> None:
        """Block until users start (Locust imported the locustfile, workers connected); LoadError if it exits."""
        marker = self.run_dir / "started"
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            assert self._master is not None
            if self._master.poll() is not None:
                raise LoadError(f"Locust exited with code {self._master.returncode} before the load started; "
                                f"{self.run_dir / 'locust.log'} ends with:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise LoadError(f"Locust did not start the load within {timeout_s} s; "
                                f"see {self.run_dir / 'locust.log'}")
            time.sleep(POLL_S)

    def _log_tail(self) -> str:
        data = (self.run_dir / "locust.log").read_bytes()
        return data[-LOG_TAIL_BYTES:].decode(errors="replace")

    def wait(self, timeout_s: float) -> int:
        """Wait for every process to end; Locust's exit code (0 unless Locust itself failed; request
        failures do not count). LoadError if still running after `timeout_s` (call stop())."""
        if self._master is None:
            raise LoadError("the load run has not been started")
        deadline = time.monotonic() + timeout_s
        for process in self._processes():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise LoadError(f"Locust (pid {process.pid}) still running after {timeout_s} s") from None
        return self._master.returncode

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the master (it stops its workers and writes its stats), then the workers; SIGKILL
        whatever is left after `grace_s`; reap every process. Safe to call again."""
        if self._cpu is not None:
            self._cpu.stop()
        deadline = time.monotonic() + grace_s
        master = [self._master] if self._master is not None else []
        for group in (master, self._workers):
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # Popen never signals a pid it has reaped
            for process in group:
                with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL below
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for process in self._processes():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=KILL_WAIT_S)
        for handle in self._logs:
            handle.close()
        self._logs.clear()
