"""Preflight of `harness up --platform kind`: Docker running with enough memory, kind, istioctl, kubectl, and
the host's inotify limits (kind's known issues, "Pod errors due to too many open files": kind asks for
fs.inotify.max_user_watches = 524288 and fs.inotify.max_user_instances = 512; kubelet, containerd and
Istio's agents in several clusters exhaust the usual defaults of 8192 and 128)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import MissingDependencyError, PlatformError
from harness.platforms.kind.commands import Command, CommandRunner

GIB = 1024 ** 3
INOTIFY_DIR = Path("/proc/sys/fs/inotify")
INOTIFY_MINIMUM = {"max_user_watches": 524288, "max_user_instances": 512}  # kind's known-issues page
_VERSION = re.compile(r"v?\d+\.\d+(\.\d+)?[^\s\"]*")


@dataclass(frozen=True)
class Preflight:
    """What was found: each tool's version and Docker's memory (None in a dry run)."""

    docker: str | None
    docker_memory_gib: float | None
    kind: str | None
    istioctl: str | None
    kubectl: str | None
    inotify: dict[str, int] | None = None  # the limits read from INOTIFY_DIR (None in a dry run)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _version(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(0) if match else None


def check_inotify(directory: Path = INOTIFY_DIR) -> dict[str, int]:
    """The host's inotify limits; PlatformError naming each one below kind's minimum and the sysctl to fix it."""
    found: dict[str, int] = {}
    for name in INOTIFY_MINIMUM:
        try:
            found[name] = int((directory / name).read_text().strip())
        except (OSError, ValueError) as exc:
            raise PlatformError(f"cannot read {directory / name} ({exc}); kind needs fs.inotify.{name} >= "
                                f"{INOTIFY_MINIMUM[name]}") from exc
    low = [f"fs.inotify.{name} is {found[name]}, kind needs at least {minimum}"
           for name, minimum in INOTIFY_MINIMUM.items() if found[name] < minimum]
    if low:
        fix = " && ".join(f"sudo sysctl fs.inotify.{name}={minimum}" for name, minimum in INOTIFY_MINIMUM.items())
        raise PlatformError("; ".join(low) + f" (kind known issues: pod errors due to too many open files); run "
                            f"`{fix}` (and put them in /etc/sysctl.d/ to keep them)")
    return found


def run_preflight(runner: CommandRunner, *, clusters: int, min_memory_gib_per_cluster: float,
                  istio_version: str, inotify_dir: Path | None = None, docker_needed: bool = True) -> Preflight:
    """Check the machine before anything is created; every failure says what to do about it. With an
    existing cluster (`docker_needed` False) Docker and the host's limits are not the harness's concern."""
    if not docker_needed:
        kubectl = runner.run(Command(("kubectl", "version", "--client=true", "-o", "json"), timeout_s=60))
        istioctl = runner.run(Command(("istioctl", "version", "--remote=false"), timeout_s=60))
        if runner.dry_run:
            return Preflight(None, None, None, None, None)
        return Preflight(None, None, None, _version(istioctl.stdout), _version(kubectl.stdout))
    inotify_dir = inotify_dir or INOTIFY_DIR
    recorder = getattr(runner, "recorder", None)
    if runner.dry_run and recorder is not None:
        recorder.add(f"CHECK {inotify_dir}/max_user_watches >= {INOTIFY_MINIMUM['max_user_watches']}, "
                     f"{inotify_dir}/max_user_instances >= {INOTIFY_MINIMUM['max_user_instances']}")
    inotify = None if runner.dry_run else check_inotify(inotify_dir)
    docker = runner.run(Command(("docker", "info", "--format", "{{.ServerVersion}} {{.MemTotal}}"),
                                timeout_s=60), check=False)
    if docker.returncode != 0:
        raise PlatformError("Docker is not running (`docker info` failed: "
                            f"{(docker.stderr or docker.stdout).strip()[-500:] or 'no output'}); start the Docker "
                            "daemon (or Docker Desktop) and try again")
    kind = runner.run(Command(("kind", "version"), timeout_s=60))
    istioctl = runner.run(Command(("istioctl", "version", "--remote=false"), timeout_s=60))
    kubectl = runner.run(Command(("kubectl", "version", "--client=true", "-o", "json"), timeout_s=60))
    if runner.dry_run:  # nothing ran: there is nothing to judge
        return Preflight(None, None, None, None, None)
    server, _, memory = docker.stdout.strip().partition(" ")
    memory_gib = int(memory) / GIB if memory.strip().isdigit() else None
    needed = clusters * min_memory_gib_per_cluster
    if memory_gib is not None and memory_gib < needed:
        raise PlatformError(f"Docker has {memory_gib:.1f} GiB of memory; {clusters} kind cluster(s) with Istio need "
                            f"at least {needed:g} GiB: give Docker more memory (Docker Desktop: Settings > "
                            "Resources) or use --clusters 1")
    istioctl_version = _version(istioctl.stdout)
    if istioctl_version and istioctl_version.lstrip("v") != istio_version:
        raise MissingDependencyError(f"istioctl is {istioctl_version} but the harness installs Istio {istio_version} "
                                     "(the release of its CRD schemas): install istioctl "
                                     f"{istio_version} or set HARNESS_ISTIO_VERSION={istioctl_version}")
    try:
        kubectl_version = json.loads(kubectl.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        kubectl_version = _version(kubectl.stdout)
    return Preflight(server or None, memory_gib, _version(kind.stdout), istioctl_version, kubectl_version, inotify)
