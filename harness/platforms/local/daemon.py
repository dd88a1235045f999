"""The local control plane process: starts the mesh, keeps pods running, serves `apply`/`kill`.

`harness up` starts it detached (`python -m harness.platforms.local.daemon STATE_DIR`); the CLI
talks to it over a Unix socket in the state directory (see client.py). It owns every other
process through the supervisor, and stops them all by PID on `shutdown`, SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness.errors import ExitCode, HarnessError
from harness.files import atomic_write
from harness.mesh.loader import declared_model
from harness.platforms.local.control import serve_control
from harness.platforms.local.launch import MeshProcesses
from harness.platforms.local.settings import LocalSettings

SETTINGS_FILE = "settings.json"
ERROR_FILE = "daemon-error.json"
DAEMON_FILE = "daemon.json"
SOCKET_FILE = "control.sock"


class Daemon:
    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.stopping = asyncio.Event()
        self.mesh: MeshProcesses | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        server = None
        try:
            # `harness up` validated every manifest strictly just before starting this process.
            self.mesh = MeshProcesses(self.settings, declared_model(self.settings.manifest_paths(), validate=False))
            server = await serve_control(self.state_dir / SOCKET_FILE, self)
            await self.mesh.start()
            await self.stopping.wait()
            return 0
        except HarnessError as exc:
            _write_error(self.state_dir, exc.to_wire())
            return exc.exit_code
        except Exception as exc:  # the daemon reports any crash to `up` before it dies
            _write_error(self.state_dir, {"type": type(exc).__name__, "message": f"{exc}\n{traceback.format_exc()}",
                                          "exit_code": int(ExitCode.INVALID)})
            return 2
        finally:
            if self.mesh is not None:
                await self.mesh.stop()
            if server is not None:
                server.close()
            (self.state_dir / SOCKET_FILE).unlink(missing_ok=True)

    async def handle(self, request: dict[str, Any]) -> Any:
        """One control request; errors travel back to the CLI with their exit code."""
        op = request.get("op")
        assert self.mesh is not None
        if op == "status":
            return self.mesh.status()
        if op == "apply":
            return await self.mesh.controller.apply([(d, f) for d, f in request["documents"]],
                                                    delete=bool(request.get("delete")),
                                                    missing_ok=bool(request.get("missing_ok")))
        if op == "reset":
            return await self.mesh.controller.reset()
        if op == "kill":
            return await self.mesh.kill(request["pod"], app_only=bool(request.get("app_only")))
        if op == "hold":
            return await self.mesh.hold(request["pod"], bool(request.get("down", True)))
        if op == "resources":
            return self.mesh.controller.resources()
        if op == "shutdown":
            self.stopping.set()
            return {"stopping": True}
        raise HarnessError(f"unknown control operation {op!r}")


def _write_error(state_dir: Path, wire: dict[str, Any]) -> None:
    """The start-up error for `harness up` to re-raise (HarnessError.from_wire)."""
    atomic_write(state_dir / ERROR_FILE, json.dumps({**wire, "at": time.time()}))


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    state_dir = Path(args[0]).resolve()
    settings = LocalSettings.from_json((state_dir / SETTINGS_FILE).read_text())
    (state_dir / DAEMON_FILE).write_text(json.dumps({"pid": os.getpid(), "started_at": time.time()}))
    return asyncio.run(Daemon(settings).run())


if __name__ == "__main__":
    sys.exit(main())
