"""The local platform as the CLI sees it: start the daemon, talk to it, clean up after it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.errors import ConfigError, HarnessError, NotUpError, PlatformError, ReadinessTimeout
from harness.mesh.loader import declared_model, load_documents
from harness.mesh.schema import validate_document
from harness.mesh.translate.stats import STATS_FLUSH_INTERVAL
from harness.platforms.local import prometheus
from harness.platforms.local.control import request
from harness.platforms.local.daemon import DAEMON_FILE, ERROR_FILE, SETTINGS_FILE, SOCKET_FILE
from harness.platforms.local.launch import PIDS_FILE, envoy_binary
from harness.platforms.local.layout import Layout
from harness.platforms.local.private import knobs_client
from harness.platforms.local.settings import LocalSettings
from harness.platforms.local.supervisor import reap_leftovers
from harness.platforms.local.traces import user_collector
from harness.platforms.model import CLEARED_KNOBS
from harness.platforms.telemetry import TelemetryPipeline, duration_s
from harness.procfs import is_gone, is_running, start_time_ticks
from harness.state import claim_state_dir, is_state_dir, mark_state_dir, remove_state

logger = logging.getLogger("harness.platforms")
POLL_S = 0.05
DAEMON_MODULE = "harness.platforms.local.daemon"


class LocalPlatform:
    name = "local"

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()

    @classmethod
    def from_env(cls, **overrides: Any) -> "LocalPlatform":
        return cls(LocalSettings.from_env(**overrides))

    @property
    def socket(self) -> Path:
        return self.state_dir / SOCKET_FILE

    @property
    def steps(self) -> list[str]:
        """What a dry run would have done so far: nothing, the local platform has no dry run."""
        return []

    @property
    def dry_run(self) -> bool:
        return False  # the local platform has no dry run

    @property
    def ledger_dir(self) -> Path:
        """The fault ledger (harness.chaos.ledger) of this mesh; removed with the mesh by `down`."""
        return self.state_dir / "ledger"

    # -- daemon bookkeeping -------------------------------------------------------------------

    def _daemon_pid(self) -> int | None:
        """The daemon's pid if that very process still runs (guards against pid reuse)."""
        try:
            info = json.loads((self.state_dir / DAEMON_FILE).read_text())
            cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError):
            return None
        ticks = start_time_ticks(info["pid"])
        if DAEMON_MODULE.encode() in cmdline and ticks is not None and is_running(info["pid"], ticks):
            return int(info["pid"])
        return None

    def is_up(self) -> bool:
        if self._daemon_pid() is None:
            return False
        try:
            return bool(request(self.socket, {"op": "status"}, timeout_s=5).get("up"))
        except HarnessError:
            return False

    # -- lifecycle ------------------------------------------------------------------------------

    def up(self, *, profile: str | None = None) -> dict[str, Any]:
        """Validate everything, start the daemon, and return once every pod is ready."""
        if self._daemon_pid() is not None:
            status = self.status()
            status["already_up"] = True
            return status
        self._clean_leftovers()
        settings = self.settings if profile is None else LocalSettings(**{**self.settings.__dict__,
                                                                          "profile": profile})
        model = declared_model(settings.manifest_paths())  # every manifest validated before anything starts
        envoy_binary(settings.envoy_bin)
        prometheus.find_binaries()
        Layout.plan(settings, model.topology).check_ports_free()
        user_collector(os.environ)  # a non-loopback OTEL_EXPORTER_OTLP_ENDPOINT: exit 2 before anything starts
        claim_state_dir(self.state_dir)
        os.chmod(self.state_dir, 0o700)  # run state (keys, the knobs token, logs): the user's only
        (self.state_dir / "logs").mkdir(mode=0o700, exist_ok=True)
        settings_for_daemon = LocalSettings(**{**settings.__dict__, "state_dir": self.state_dir})
        (self.state_dir / SETTINGS_FILE).write_text(settings_for_daemon.to_json())
        log = open(os.open(self.state_dir / "logs" / "daemon.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
                   "ab")
        with log:
            process = subprocess.Popen([sys.executable, "-m", DAEMON_MODULE, str(self.state_dir)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       start_new_session=True)
        return self._wait_up(process, settings.ready_timeout_s + 20)

    def _wait_up(self, process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = self._daemon_error()
                self._clean_leftovers()
                raise error
            try:
                status = request(self.socket, {"op": "status"}, timeout_s=5)
            except NotUpError:
                status = None
            if status and status.get("up"):
                return status
            time.sleep(POLL_S)
        self.down()
        raise ReadinessTimeout(f"the local mesh was not ready within {timeout_s:.0f} s; "
                               f"see the logs under {self.state_dir / 'logs'} (kept in {self.state_dir}.failed)")

    def _daemon_error(self) -> HarnessError:
        try:
            info = json.loads((self.state_dir / ERROR_FILE).read_text())
        except (OSError, ValueError):
            log = self.state_dir / "logs" / "daemon.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            return PlatformError(f"the local control plane exited during start-up:\n{tail}")
        return HarnessError.from_wire(info)

    def describe_down(self, stopped: list[int]) -> str:
        return f"stopped {len(stopped)} process(es)" if stopped else "nothing was running"

    def down(self) -> list[int]:
        """Stop the daemon (which stops its children), then any leftover by recorded PID."""
        stopped: list[int] = []
        pid = self._daemon_pid()
        if pid is not None:
            try:
                request(self.socket, {"op": "shutdown"}, timeout_s=5)
            except HarnessError:
                _signal(pid, signal.SIGTERM)
            if not _wait_gone(pid, 15.0):
                _signal(pid, signal.SIGKILL)
                _wait_gone(pid, 5.0)
            stopped.append(pid)
        stopped += self._clean_leftovers()
        return stopped

    def _clean_leftovers(self) -> list[int]:
        """After a crash: stop recorded processes still alive, then remove the run state.

        Only a folder carrying the harness's marker is touched (an empty one is simply removed); any
        other folder is refused with an error before a recorded pid is signalled or a file removed.
        """
        if self.state_dir.exists() and not is_state_dir(self.state_dir):
            remove_state(self.state_dir)  # removes an empty folder; refuses anything else
            return []
        stopped: list[int] = []
        if (self.state_dir / PIDS_FILE).exists():
            stopped = reap_leftovers(self.state_dir / PIDS_FILE)
        if self.state_dir.exists():
            failed_logs = self.state_dir / "logs"
            keep = self.state_dir.with_name(self.state_dir.name + ".failed")
            if (self.state_dir / ERROR_FILE).exists() and failed_logs.exists() and (
                    not keep.exists() or is_state_dir(keep)):
                shutil.rmtree(keep, ignore_errors=True)  # a copy the harness made (it carries the marker)
                shutil.copytree(failed_logs, keep)
                shutil.copy(self.state_dir / ERROR_FILE, keep / ERROR_FILE)
                mark_state_dir(keep)
            left = remove_state(self.state_dir)
            if left:
                logger.warning("left in %s what the harness did not write: %s", self.state_dir, ", ".join(left))
        return stopped

    # -- requests ---------------------------------------------------------------------------------

    def _request(self, payload: dict[str, Any], timeout_s: float = 30.0) -> Any:
        if self._daemon_pid() is None:
            raise NotUpError(f"the local mesh is not running (state dir {self.state_dir}); run `harness up`")
        return request(self.socket, payload, timeout_s=timeout_s)

    def status(self) -> dict[str, Any]:
        return self._request({"op": "status"})

    def telemetry_pipeline(self) -> TelemetryPipeline:
        """The periods the running mesh uses: Envoy's stats flush (the bootstrap's), and the scrape and
        rule intervals of the prometheus.yml the daemon wrote."""
        try:
            config = yaml.safe_load((self.state_dir / "prometheus" / "prometheus.yml").read_text())["global"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NotUpError(f"no Prometheus config of a running local mesh in {self.state_dir}: {exc}") from exc
        return TelemetryPipeline(stats_flush_s=duration_s(STATS_FLUSH_INTERVAL, field="stats_flush_interval"),
                                 scrape_s=duration_s(config["scrape_interval"], field="scrape_interval"),
                                 rule_s=duration_s(config["evaluation_interval"], field="evaluation_interval"))

    def apply(self, files: list[Path], *, delete: bool = False) -> dict[str, Any]:
        documents = load_documents(files)  # validated here, so errors name the user's file
        return self._request({"op": "apply", "documents": documents, "delete": delete})

    def apply_documents(self, documents: list[dict[str, Any]], *, delete: bool = False,
                        source: str = "generated by the harness", missing_ok: bool = False) -> dict[str, Any]:
        """Apply resources built in memory (chaos faults), validated like files (missing_ok: base.py)."""
        for index, doc in enumerate(documents):
            validate_document(doc, file=Path(source), index=index)
        return self._request({"op": "apply", "documents": [(doc, source) for doc in documents], "delete": delete,
                              "missing_ok": missing_ok})

    def reset(self) -> dict[str, Any]:
        """Back to the declared mesh: Istio resources as declared, every held pod released (and ready
        again), every app's fault knobs cleared."""
        result = self._request({"op": "reset"})
        held = [p["name"] for p in self.pods() if p.get("held")]
        for pod in held:
            self.hold(pod, down=False)
        deadline = time.monotonic() + self.settings.ready_timeout_s
        while held and not all(p["ready"] for p in self.pods() if p["name"] in held):
            if time.monotonic() > deadline:
                raise ReadinessTimeout(f"released pods not ready within {self.settings.ready_timeout_s:.0f} s: "
                                       f"{', '.join(held)}")
            time.sleep(POLL_S)
        cleared = []
        for pod in self.pods():
            if _faulty(self.get_knobs(pod["name"])):
                self.set_knobs(pod["name"], **CLEARED_KNOBS)
                cleared.append(pod["name"])
        return {**result, "released": held, "knobs_cleared": cleared}

    def declared_resources(self) -> list[dict[str, Any]]:
        """The Istio resources the mesh declares (the shipped manifests or HARNESS_MANIFESTS_DIR)."""
        model = declared_model(self.settings.manifest_paths(), validate=False)
        return [doc for doc, _ in model.documents if "istio.io" in doc.get("apiVersion", "")]

    def holds(self) -> list[str]:
        """What is held down now, one line each (a failed region's or a scaled-down service's pods)."""
        return [f"pod {p['name']} is held down" for p in self.pods() if p.get("held")]

    def get_knobs(self, pod: str) -> dict[str, Any]:
        """A pod's app behaviour knobs as its app reports them (GET /admin/knobs)."""
        match = [p for p in self.pods() if p["name"] == pod]
        if not match:
            raise ConfigError(f"no pod {pod!r}", field="pod")
        try:
            with knobs_client(self.state_dir, pod) as client:
                response = client.get("/admin/knobs")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise PlatformError(f"cannot read the knobs of {pod}: {exc}") from exc
        return response.json()

    def pods(self) -> list[dict[str, Any]]:
        return self.status()["pods"]

    def set_knobs(self, pod: str, **values: Any) -> dict[str, Any]:
        """Per-pod app behaviour (latency_ms, error_rate, error_status, hang), set on the app itself."""
        match = [p for p in self.pods() if p["name"] == pod]
        if not match:
            raise ConfigError(f"no pod {pod!r}", field="pod")
        try:
            with knobs_client(self.state_dir, pod) as client:
                response = client.put("/admin/knobs", json=values)
        except httpx.HTTPError as exc:
            raise PlatformError(f"cannot reach the app of {pod} to set {values}: {exc}") from exc
        if response.status_code == 400:
            raise ConfigError(response.json().get("error", response.text), field="knobs")
        response.raise_for_status()
        return response.json()

    def kill(self, pod: str, *, app_only: bool = False) -> dict[str, Any]:
        return self._request({"op": "kill", "pod": pod, "app_only": app_only})

    def hold(self, pod: str, *, down: bool) -> dict[str, Any]:
        return self._request({"op": "hold", "pod": pod, "down": down})

    def resources(self) -> list[dict[str, Any]]:
        return self._request({"op": "resources"})




def _faulty(knobs: dict[str, Any]) -> bool:
    """Any fault knob set (the ai_* knobs are configuration, not faults)."""
    return any(knobs.get(name, value) != value for name, value in CLEARED_KNOBS.items())


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return  # it exited on its own in the meantime: that is what we wanted


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return True
        except ChildProcessError:
            pass
        if is_gone(pid):
            return True
        time.sleep(POLL_S)
    return False
