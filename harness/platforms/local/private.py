"""What only the user running the mesh may touch: the state folder (0700), logs (0600), the apps' Unix
sockets (in a 0700 folder) and the per-run token that `/admin/knobs` asks for (0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx

from harness.errors import ConfigError, PlatformError
from harness.files import atomic_write

KNOBS_TOKEN_FILE = "knobs-token"
SOCKETS_DIR = "sockets"
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


def app_socket(state_dir: Path, pod: str) -> Path:
    return state_dir / SOCKETS_DIR / f"{pod}.sock"


def make_private(state_dir: Path, pods: list[str]) -> str:
    """Restrict the state folder and its logs to the user, make the socket folder, write a new knobs token.

    Returns the token. Raises ConfigError before anything starts when a socket path would be too long."""
    for pod in pods:
        path = app_socket(state_dir, pod)
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise ConfigError(f"the app socket {path} is longer than {MAX_SOCKET_PATH} bytes (a Unix socket "
                              "limit); choose a shorter state folder", field="HARNESS_STATE_DIR")
    for folder in (state_dir, state_dir / "logs", state_dir / SOCKETS_DIR):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    for log in (state_dir / "logs").iterdir():
        if log.is_file():
            os.chmod(log, 0o600)
    token = secrets.token_urlsafe(32)
    atomic_write(state_dir / KNOBS_TOKEN_FILE, token.encode(), mode=0o600)
    return token


def knobs_token(state_dir: Path) -> str:
    """The running mesh's knobs token, as the harness's own knob clients send it."""
    try:
        return (state_dir / KNOBS_TOKEN_FILE).read_text().strip()
    except OSError as exc:
        raise PlatformError(f"cannot read the knobs token {state_dir / KNOBS_TOKEN_FILE}: {exc}") from exc


def knobs_client(state_dir: Path, pod: str, timeout_s: float = 5.0) -> httpx.Client:
    """A client for one app's /admin/knobs: over its socket, with the run's token, never via a proxy."""
    return httpx.Client(base_url="http://127.0.0.1", timeout=timeout_s, trust_env=False,
                        transport=httpx.HTTPTransport(uds=str(app_socket(state_dir, pod))),
                        headers={"authorization": f"Bearer {knobs_token(state_dir)}"})
