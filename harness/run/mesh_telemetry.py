"""The run's SLOs against the Telemetry of the mesh they will read: declared (validate) and live (run).

`harness validate` checks the declared manifests plus the experiment's `mesh:` variants; `harness run`
checks again once the mesh is up, with the resources the mesh actually has (a Telemetry applied with
`harness apply` since `up` counts too), before the load and any fault. The rules are in
harness/slo/telemetry_needs.py.
"""

from __future__ import annotations

from harness.errors import ConfigError
from harness.mesh.loader import Located, declared_model, declared_topology, merge_documents, resource_key
from harness.mesh.telemetry_api import check_one_per_namespace, check_telemetry
from harness.platforms.base import Platform
from harness.run.settings import ExperimentSettings
from harness.slo.model import Slo
from harness.slo.telemetry_needs import LIVE_SUFFIX, check_telemetry_needs, lag_probe_needs, slo_needs

__all__ = ["check_declared_telemetry", "check_live_telemetry"]


def _with_variants(documents: list[Located], settings: ExperimentSettings) -> list[Located]:
    """The mesh the run's phases use: the experiment's `mesh:` manifests replace what they name."""
    from harness.chaos.tuning import mesh_change_documents

    for manifest in settings.mesh:
        documents = merge_documents(documents, [(doc, f"harness/mesh/manifests/{manifest}")
                                                for doc in mesh_change_documents(manifest)])
    return documents


def _check(slos: list[Slo], documents: list[Located]) -> None:
    needs = [need for slo in slos for need in slo_needs(slo)]
    if not needs:  # no mesh SLO: no lag probe either
        return
    check_telemetry_needs([*needs, *lag_probe_needs()], documents, declared_topology(validate=False))


def check_declared_telemetry(settings: ExperimentSettings, slos: list[Slo]) -> None:
    """Before any mesh exists: the shipped manifests (and the experiment's variants) keep what the SLOs read."""
    if not any(slo.source == "mesh" for slo in slos):
        return
    _check(slos, _with_variants(list(declared_model(validate=False).documents), settings))


def check_live_telemetry(settings: ExperimentSettings, slos: list[Slo], platform: Platform) -> None:
    """With the mesh up: its live Istio resources (and the experiment's variants) keep what the SLOs read.

    A live resource identical to a declared one is named by its manifest file; any other was applied to
    the running mesh (`harness apply`), and the message says so with its kind, namespace and name."""
    if not any(slo.source == "mesh" for slo in slos):
        return
    declared = {resource_key(doc): (doc, file) for doc, file in declared_model(validate=False).documents}
    documents: list[Located] = []
    for doc in platform.resources():
        kind, namespace, name = resource_key(doc)
        known = declared.get((kind, namespace, name))
        if known is not None and known[0].get("spec") == doc.get("spec"):
            documents.append((doc, known[1]))
        else:
            documents.append((doc, f"{kind} {namespace}/{name} {LIVE_SUFFIX}"))
    documents = _with_variants(documents, settings)
    # A mesh set up before its Telemetry became one resource (kind) may still hold two selector-less
    # ones in a namespace; Istio uses only the oldest, so what the SLOs read would be a guess.
    try:
        check_one_per_namespace(check_telemetry(doc, file=file) for doc, file in documents
                                if doc.get("kind") == "Telemetry")
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; on the running mesh, `harness reset` puts back the declared "
                          f"Telemetry", file=exc.file, field=exc.field) from exc
    _check(slos, documents)
