"""Writes a proxy's xDS resources as watched files, atomically and only when they change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from harness.mesh.translate.clusters import eds_file
from harness.mesh.translate.listeners import rds_file
from harness.mesh.translate.model import ProxyConfig, ProxyNode

CLA = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


def _response(resources: list[dict[str, Any]]) -> str:
    # Serialised once, compactly: every push compares every file, and the indented encoder is
    # Python's slow one (most of a push's time before this).
    body = json.dumps(resources, sort_keys=True, separators=(",", ":"))
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    return f'{{"resources":{body},"version_info":"{version}"}}'


class XdsWriter:
    """Envoy reloads a watched file only when one is renamed into its directory."""

    def __init__(self, node: ProxyNode) -> None:
        self.node = node
        self._written: dict[Path, str] = {}
        for sub in ("", "eds", "rds"):
            (node.xds_dir / sub).mkdir(parents=True, exist_ok=True)

    def write(self, config: ProxyConfig) -> list[Path]:
        """Write what changed; EDS and RDS before CDS and LDS so new references resolve."""
        files: list[tuple[Path, str]] = []
        for name, assignment in config.endpoints.items():
            files.append((eds_file(self.node, name), _response([{"@type": CLA, **assignment}])))
        for name, route in config.routes.items():
            files.append((rds_file(self.node, name), _response([route])))
        files.append((self.node.xds_dir / "cds.json", _response(config.clusters)))
        files.append((self.node.xds_dir / "lds.json", _response(config.listeners)))
        changed = []
        for path, text in files:
            if self._written.get(path) == text:
                continue
            _atomic_write(path, text)
            self._written[path] = text
            changed.append(path)
        return changed


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.rename(tmp, path)
