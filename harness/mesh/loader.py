"""Load manifests into the mesh model: validated documents, topology and Istio config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.mesh.resources import NAMESPACE, IstioConfig, parse_istio
from harness.mesh.topology import Topology, build_topology

Located = tuple[dict[str, Any], str]  # a document and the file it came from


@dataclass(frozen=True)
class MeshModel:
    """The declared mesh: every document with its file, and what they describe."""

    documents: tuple[Located, ...]
    topology: Topology
    istio: IstioConfig


def load_documents(paths: Iterable[Path], *, validate: bool = True) -> list[Located]:
    """Parse and strictly validate every document; the first invalid file raises ManifestError.

    `validate=False` is for a process that loads files another one validated moments before.
    """
    from harness.mesh.schema import load_yaml_documents, validate_document  # jsonschema: only when needed

    located: list[Located] = []
    for path in paths:
        for index, doc in enumerate(load_yaml_documents(path)):
            if validate:
                validate_document(doc, file=path, index=index)
            located.append((doc, str(path)))
    return located


def resource_key(doc: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name), as kubectl apply matches resources; the namespace defaults to parallel-ai.
    Tolerant of a document without kind or name (a live resource as a platform lists it): "?"."""
    meta = doc.get("metadata") or {}
    return doc.get("kind") or "?", meta.get("namespace") or NAMESPACE, meta.get("name") or "?"


def undeclared(live: Iterable[dict[str, Any]], declared: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live resources whose kind, namespace and name the mesh does not declare: what a reset deletes
    (both platforms' `reset` go back to exactly the declared resources)."""
    wanted = {resource_key(doc) for doc in declared}
    return [doc for doc in live if resource_key(doc) not in wanted]


def build_model(documents: Iterable[Located]) -> MeshModel:
    docs = tuple(documents)
    model = MeshModel(documents=docs, topology=build_topology(list(docs)), istio=parse_istio(list(docs)))
    if model.istio.telemetry:  # two Telemetry resources selecting one workload: refused before anything starts
        from harness.mesh.telemetry_api import check_workload_selectors

        check_workload_selectors(model.istio.telemetry, model.topology.workloads())
    return model


def merge_documents(base: Iterable[Located], changes: Iterable[Located], *,
                    delete: bool = False) -> list[Located]:
    """kubectl-apply semantics: a resource replaces the one with the same kind, namespace and name."""
    merged = {resource_key(doc): (doc, file) for doc, file in base}
    for doc, file in changes:
        if delete:
            merged.pop(resource_key(doc), None)
        else:
            merged[resource_key(doc)] = (doc, file)
    return list(merged.values())


def check_deletable(current: Iterable[dict[str, Any]], changes: Iterable[Located]) -> None:
    """Refuse a delete of a resource that `current` (the live mesh) does not have, before anything is
    deleted, as `kubectl delete -f` answers NotFound: a typo must not look like a removed fault."""
    from harness.errors import ResourceNotFoundError

    present = {resource_key(doc) for doc in current}
    missing = [(doc, file) for doc, file in changes if resource_key(doc) not in present]
    if not missing:
        return
    lines = [f"{kind} {namespace}/{name} not found in the running mesh (kubectl: NotFound)"
             + (f" ({file})" if len(missing) > 1 else "")
             for (kind, namespace, name), file in ((resource_key(doc), file) for doc, file in missing)]
    raise ResourceNotFoundError("; ".join(lines) + "; nothing was deleted", file=missing[0][1], field="metadata.name")


def declared_topology(*, validate: bool = True) -> Topology:
    """The shipped mesh's services and pods alone: no Istio resources parsed (their CEL is not checked)."""
    from harness.mesh.schema import default_manifest_paths

    return build_topology(load_documents(default_manifest_paths(("kubernetes",)), validate=validate))


def declared_model(paths: Iterable[Path] | None = None, *, validate: bool = True) -> MeshModel:
    """The mesh as shipped (kubernetes + istio folders), or as the given files declare it."""
    from harness.mesh.schema import default_manifest_paths

    return build_model(load_documents(paths if paths is not None else default_manifest_paths(), validate=validate))
