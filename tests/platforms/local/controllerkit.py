"""A local control plane without processes, for tests: the declared mesh, placeholder keys, no proxy."""

from __future__ import annotations

from pathlib import Path

from harness.mesh.loader import declared_model
from harness.mesh.translate import CertPaths, ExternalEndpoint
from harness.platforms.local.controller import MeshController
from harness.platforms.local.layout import Layout
from harness.platforms.local.settings import LocalSettings


def make_controller(tmp_path: Path, *, ready: bool) -> MeshController:
    """A controller that has made its first push; `ready`: every pod's endpoint ready before it."""
    settings = LocalSettings(state_dir=tmp_path / "state", base_port=41000)
    declared = declared_model(validate=False)
    layout = Layout.plan(settings, declared.topology)
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("chain.pem", "key.pem"):  # read into the SDS secret; the content is not checked here
        (pki / name).write_text(f"placeholder {name}\n")
    certs = {sa: CertPaths(pki / "chain.pem", pki / "key.pem", pki / "root.pem")
             for sa in {p.service_account for p in declared.topology.pods} | {"api-gateway"}}
    external = {"api.openai.com": ExternalEndpoint("api.openai.com", "127.0.0.1", layout.external_port,
                                                   pki / "external-root.pem")}
    controller = MeshController(declared, layout, certs, external)
    if ready:
        controller.ready = {p.name for p in declared.topology.pods}
    controller.push("initial")
    return controller
