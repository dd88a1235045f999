"""Writes a proxy's xDS resources as watched files, atomically and only when they change.

The controller calls `XdsWriter.write` on every push. Each file carries a `version_info` (a hash
of its resources); Envoy shows the version it took as a `version_text` readout, which is how the
controller knows a proxy has taken a push (see platforms/local/acks.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files import atomic_write
from harness.mesh.translate.clusters import eds_file
from harness.mesh.translate.listeners import rds_file
from harness.mesh.translate.model import ProxyConfig, ProxyNode
from harness.mesh.translate.secrets import sds_file

CLA = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"


@dataclass(frozen=True)
class WrittenFile:
    """One renamed file, and where Envoy reports the version it took from it."""

    path: Path
    version: str
    kind: str  # lds, cds, rds, eds or sds
    name: str  # the route configuration (rds), cluster (eds) or secret (sds) it holds; "" for lds and cds


def _response(resources: list[dict[str, Any]]) -> tuple[str, str]:
    # Compact: the indented encoder is Python's slow one (most of a push's time when it was used).
    body = json.dumps(resources, sort_keys=True, separators=(",", ":"))
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    return version, f'{{"resources":{body},"version_info":"{version}"}}'


class XdsWriter:
    """Envoy reloads a watched file only when one is renamed into its directory."""

    def __init__(self, node: ProxyNode) -> None:
        self.node = node
        self._written: dict[Path, list[dict[str, Any]]] = {}  # the resources last written, per file
        self._versions: dict[Path, str] = {}
        for sub in ("", "eds", "rds", "sds"):
            (node.xds_dir / sub).mkdir(parents=True, exist_ok=True)

    def write(self, config: ProxyConfig) -> list[WrittenFile]:
        """Write what changed; SDS, EDS and RDS before CDS and LDS so new references resolve.

        Resources are compared as dicts before anything is serialised: on an endpoint push only a
        few of a proxy's ~10 files change.
        """
        files: list[tuple[Path, str, str, list[dict[str, Any]]]] = []
        for name, secret in config.secrets.items():
            files.append((sds_file(self.node, name), "sds", name, [secret]))
        for name, assignment in config.endpoints.items():
            files.append((eds_file(self.node, name), "eds", name, [{"@type": CLA, **assignment}]))
        for name, route in config.routes.items():
            files.append((rds_file(self.node, name), "rds", name, [route]))
        files.append((self.node.xds_dir / "cds.json", "cds", "", config.clusters))
        files.append((self.node.xds_dir / "lds.json", "lds", "", config.listeners))
        changed = []
        for path, kind, name, resources in files:
            if self._written.get(path) == resources:
                continue
            version, text = _response(resources)
            # A secret holds a private key. Not durable: Envoy reads the file at once, and a push lost
            # to a crash is simply pushed again by the next controller.
            atomic_write(path, text, mode=0o600 if kind == "sds" else 0o644, durable=False)
            self._written[path] = resources
            self._versions[path] = version
            changed.append(WrittenFile(path, version, kind, name))
        return changed

    def version_of(self, path: Path) -> str | None:
        """The version last written to `path`; a later push may have replaced what an earlier one wrote."""
        return self._versions.get(path)
