"""free_port: the one way the harness (and its tests) picks a loopback TCP port nothing holds."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now; the caller binds it a moment later (the kernel may hand it
    to someone else in between, so a caller that must be sure binds it itself and retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
