"""Istio objects on the API server: which resource a document is, and objects read back as manifests."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.mesh.schema import ISTIO_CRD_PATH
from harness.platforms.kind import render
from harness.platforms.kind.kube import Resource
from harness.platforms.kind.settings import NAMESPACE

_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


@functools.cache
def _plurals() -> dict[tuple[str, str], str]:
    """(group, kind) -> plural of every Istio CRD in the bundled CRD file."""
    with ISTIO_CRD_PATH.open(encoding="utf-8") as stream:
        return {(crd["spec"]["group"], crd["spec"]["names"]["kind"]): crd["spec"]["names"]["plural"]
                for crd in yaml.load_all(stream, Loader=_LOADER) if crd}


def istio_resource(doc: dict[str, Any], *, source: str | Path, index: int = 0) -> Resource:
    """The API resource of an Istio document; anything else is not the harness's to apply live."""
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    group = api_version.rpartition("/")[0]
    plural = _plurals().get((group, kind))
    if plural is None:
        raise ConfigError(f"document {index} ({kind}): only Istio resources are applied live (networking, "
                          f"security, telemetry.istio.io); got {api_version} {kind}", file=str(source),
                          field="kind")
    return Resource(api_version, plural)


def in_namespace(doc: dict[str, Any], *, source: str | Path, index: int = 0) -> dict[str, Any]:
    """The document with metadata.namespace parallel-ai (any other namespace is refused), exportTo ["."]
    where the kind has it (render.exported_here), and a Gateway selecting only the harness's gateway pods
    (render.own_gateway)."""
    namespace = (doc.get("metadata") or {}).get("namespace", NAMESPACE)
    if namespace != NAMESPACE:
        raise ConfigError(f"document {index} ({doc.get('kind')}/{doc['metadata'].get('name')}): the harness touches "
                          f"only namespace {NAMESPACE!r}, got {namespace!r}", file=str(source),
                          field="metadata.namespace")
    scoped = render.exported_here({**doc, "metadata": {**doc["metadata"], "namespace": NAMESPACE}}, source=source,
                                  index=index)
    return render.own_gateway(scoped, source=source, index=index)


def as_manifest(obj: dict[str, Any], resource: Resource, kind: str) -> dict[str, Any]:
    """An object read from the API as the manifest that would create it: no status or server metadata."""
    meta = obj.get("metadata") or {}
    clean: dict[str, Any] = {"name": meta["name"], "namespace": meta.get("namespace", NAMESPACE)}
    if meta.get("labels"):
        clean["labels"] = dict(meta["labels"])
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    if annotations:
        clean["annotations"] = annotations
    manifest = {"apiVersion": resource.api_version, "kind": kind, "metadata": clean}
    if "spec" in obj:
        manifest["spec"] = obj["spec"]
    return manifest
