"""Running the tools the kind platform drives (docker, kind, istioctl, kubectl): for real, or recorded.

`CommandRunner` is the one extension point: `SubprocessRunner` runs a command and waits for it (the
child is killed by its own PID on timeout); `RecordingRunner` only writes it into a `Recorder`,
which `--dry-run` prints. API calls (kube.py) and HTTP probes go into the same Recorder, so the
printed plan is the exact order of everything `up`, `down` or a fault would do.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

from harness.errors import MissingDependencyError, PlatformError, ReadinessTimeout

INSTALL_HINTS = {
    "docker": "install Docker Engine (https://docs.docker.com/engine/install/) and start it",
    "kind": "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "istioctl": "install istioctl (curl -L https://istio.io/downloadIstio | sh -), the release that matches "
                "HARNESS_ISTIO_VERSION",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
}
STDERR_TAIL = 1500  # characters of a failed command's stderr kept in the error


@dataclass(frozen=True)
class Command:
    """One program run: argv, optional stdin, and what a dry run shows instead of the stdin text."""

    argv: tuple[str, ...]
    stdin: str | None = None
    stdin_summary: str | None = None  # e.g. "Secret istio-system/cacerts": never print key material
    timeout_s: float = 900.0  # `kind create cluster` and image builds take minutes on a cold machine

    def display(self) -> str:
        text = shlex.join(self.argv)
        if self.stdin is not None or self.stdin_summary is not None:
            text += f" <<< {self.stdin_summary or 'stdin'}"
        return text


@dataclass(frozen=True)
class CommandResult:
    command: Command
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class Recorder:
    """Everything a dry run would do, in order: `$ command`, `API ...` and `HTTP ...` lines."""

    steps: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.steps.append(line)


class CommandRunner(Protocol):
    dry_run: bool

    def run(self, command: Command, *, check: bool = True) -> CommandResult:
        """Run `command` to its end; with `check`, a non-zero exit is a PlatformError naming it."""


class SubprocessRunner:
    """Runs commands for real, waiting for each; nothing is left running after `run` returns."""

    dry_run = False

    def run(self, command: Command, *, check: bool = True) -> CommandResult:
        try:
            completed = subprocess.run(list(command.argv), input=command.stdin, capture_output=True, text=True,
                                       timeout=command.timeout_s, check=False)
        except FileNotFoundError as exc:
            program = command.argv[0]
            hint = INSTALL_HINTS.get(program, f"install {program}")
            raise MissingDependencyError(f"{program} is not installed (needed for `{command.display()}`): "
                                         f"{hint}") from exc
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child by then
            raise ReadinessTimeout(f"`{command.display()}` did not finish within {command.timeout_s:.0f} s") from exc
        result = CommandResult(command, completed.returncode, completed.stdout, completed.stderr)
        if check and completed.returncode != 0:
            raise PlatformError(f"`{command.display()}` failed with exit code {completed.returncode}: "
                                f"{completed.stderr.strip()[-STDERR_TAIL:] or completed.stdout.strip()[-STDERR_TAIL:]}")
        return result


class RecordingRunner:
    """Records commands instead of running them; answers with canned output (default: empty, exit 0)."""

    dry_run = True

    def __init__(self, recorder: Recorder, outputs: dict[tuple[str, ...], str] | None = None) -> None:
        self.recorder = recorder
        self.outputs = dict(outputs or {})

    def run(self, command: Command, *, check: bool = True) -> CommandResult:
        self.recorder.add(f"$ {command.display()}")
        return CommandResult(command, 0, self.outputs.get(command.argv, ""), "")


class KubeconfigRunner:
    """Hands every tool the same kubeconfig the API client reads (HARNESS_KUBECONFIG): kubectl and
    istioctl get `--kubeconfig`, `kind create|delete cluster` too (kind writes and removes the context
    there); other commands pass unchanged. Without it the tools would act on $KUBECONFIG or
    ~/.kube/config while the client read another file."""

    def __init__(self, inner: CommandRunner, kubeconfig: str) -> None:
        self.inner = inner
        self.kubeconfig = kubeconfig
        self.dry_run = inner.dry_run

    def _argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        flag = ("--kubeconfig", self.kubeconfig)
        if argv and argv[0] in ("kubectl", "istioctl") and "--kubeconfig" not in argv:
            return (argv[0], *flag, *argv[1:])
        if argv[:1] == ("kind",) and argv[1:3] in (("create", "cluster"), ("delete", "cluster")):
            return (*argv, *flag)
        return argv

    def run(self, command: Command, *, check: bool = True) -> CommandResult:
        return self.inner.run(Command(self._argv(command.argv), stdin=command.stdin,
                                      stdin_summary=command.stdin_summary, timeout_s=command.timeout_s), check=check)
