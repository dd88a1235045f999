"""The kind platform: the mesh on kind clusters with real Istio; chaos through the Kubernetes API."""

from harness.platforms.kind.commands import Command, CommandResult, CommandRunner, Recorder, RecordingRunner, \
    SubprocessRunner
from harness.platforms.kind.kube import ClientKube, KubeApi, NamespaceGuard, RecordingKube
from harness.platforms.kind.load import InClusterLoad
from harness.platforms.kind.platform import KindPlatform
from harness.platforms.kind.settings import KindSettings

__all__ = [
    "ClientKube",
    "Command",
    "CommandResult",
    "CommandRunner",
    "InClusterLoad",
    "KindPlatform",
    "KindSettings",
    "KubeApi",
    "NamespaceGuard",
    "Recorder",
    "RecordingKube",
    "RecordingRunner",
    "SubprocessRunner",
]
