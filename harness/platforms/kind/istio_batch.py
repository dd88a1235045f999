"""A batch of Istio resources against what a cluster holds: the checks `apply`/`apply --delete` make first.

Each check reads the clusters and raises before the batch changes anything, so a refused batch leaves
every cluster as it was (nothing half-applied, nothing half-deleted):

- `check_namespace_wide_telemetry`: Istio applies only the oldest Telemetry without a selector in a
  namespace and ignores the others without a word (istio/istio pilot/pkg/model/telemetry.go
  `namespaceWideTelemetryConfig`, called once for the root namespace and once for the proxy's own). What
  counts is the set the batch leaves: the cluster's Telemetry overlaid by the batch (the same name
  replaces, as kubectl apply does; a new name adds). More than one namespace-wide Telemetry in a namespace
  of that final set is refused, whichever names the batch carries (the declared one re-applied by name
  beside another is refused too). `telemetry_api.match_labels` is the one definition of namespace-wide.
- `check_deletable`: `kubectl delete -f` of an object the cluster lacks answers `Error from server
  (NotFound)` and exits 1 unless `--ignore-not-found` (kubernetes/kubectl pkg/cmd/delete/delete.go
  `DeleteResult`: `r.IgnoreErrors(errors.IsNotFound)` only with IgnoreNotFound, and the visit returns the
  first error). Here it is ResourceNotFoundError (bad input, exit 2), one line per missing object and
  cluster. kubectl has by then deleted the objects visited before the missing one; the harness checks
  the whole batch first, so a refused delete deletes nothing.
What `reset` deletes to get back to the declared mesh is loader.undeclared, as on the local platform.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import ConfigError, ResourceNotFoundError
from harness.mesh.loader import resource_key
from harness.mesh.telemetry_api import TelemetryResource, check_workload_selectors, match_labels

TELEMETRY = "Telemetry"


def namespace_wide(doc: dict[str, Any]) -> bool:
    """A Telemetry without a selector (or with an empty matchLabels): Istio's namespace-wide one."""
    return doc.get("kind") == TELEMETRY and match_labels(doc.get("spec") or {}) is None


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    """(namespace, name) as kubectl apply matches them (loader.resource_key: a manifest without a
    namespace goes to the mesh's, as the platform applies it)."""
    return resource_key(doc)[1:]


def _final_telemetry(batch: list[dict[str, Any]], live: Iterable[dict[str, Any]], *, context: str,
                     source: str) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """The Telemetry a cluster would hold after the batch: its own (`live`, read from `context`) overlaid
    by the batch's (the same name replaces, as kubectl apply does; a new name adds), each with the file
    or place a message names."""
    final = {_key(doc): (doc, f"{TELEMETRY} {'/'.join(_key(doc))} in {context}") for doc in live
             if doc.get("kind") == TELEMETRY}
    final.update((_key(doc), (doc, source)) for doc in batch if doc.get("kind") == TELEMETRY)
    return final


def applies_telemetry(batch: Iterable[dict[str, Any]], *, delete: bool) -> bool:
    """Whether the batch can change which Telemetry apply to a namespace or a workload: only an apply of
    one can (a delete, or a batch without one, never does), so only then are the clusters read."""
    return not delete and any(doc.get("kind") == TELEMETRY for doc in batch)


def check_workload_telemetry(batch: list[dict[str, Any]], live: Iterable[dict[str, Any]],
                             workloads: Iterable[tuple[str, tuple[tuple[str, str], ...]]], *, context: str,
                             source: str) -> None:
    """Refuse the batch when the cluster's Telemetry (`live`) overlaid by it would have two selecting one
    of `workloads` ((namespace, pod labels)): Istio's Telemetry API allows one per workload (istioctl
    IST0159), and the local platform refuses the same (telemetry_api.check_workload_selectors)."""
    selecting = []
    for doc, file in _final_telemetry(batch, live, context=context, source=source).values():
        labels = match_labels(doc.get("spec") or {})
        if labels is not None:
            namespace, name = _key(doc)
            selecting.append(TelemetryResource(name=name, namespace=namespace, file=file,
                                               selector=tuple(sorted(labels.items()))))
    check_workload_selectors(selecting, workloads)


def check_namespace_wide_telemetry(batch: list[dict[str, Any]], live: Iterable[dict[str, Any]], *, context: str,
                                   source: str) -> None:
    """Refuse the batch when the cluster's Telemetry (`live`, as read from `context`) overlaid by it would
    hold more than one namespace-wide Telemetry in a namespace; the message names the batch's Telemetry,
    the file and spec.selector."""
    # the same name replaces, also by one with a selector
    final = [key for key, (doc, _) in _final_telemetry(batch, live, context=context, source=source).items()
             if namespace_wide(doc)]
    for doc in batch:
        if not namespace_wide(doc):
            continue
        namespace, name = _key(doc)
        together = sorted(n for ns, n in final if ns == namespace)
        if len(together) > 1:
            raise ConfigError(
                f"Telemetry {name!r}: namespace {namespace} would have {len(together)} Telemetry without a selector "
                f"in {context} ({', '.join(repr(n) for n in together)}); Istio applies only the oldest of them and "
                "ignores the others (pilot namespaceWideTelemetryConfig). Merge them into one, or delete the "
                "others (`harness reset` deletes every Telemetry the mesh does not declare)",
                file=source, field="spec.selector")


def check_deletable(batch: list[dict[str, Any]], missing: list[tuple[dict[str, Any], str]], *, source: str) -> None:
    """Refuse a delete batch when any of its objects (`missing`: document, context) is not in a cluster."""
    if not missing:
        return
    lines = [f"{doc['kind']} {_key(doc)[0]}/{_key(doc)[1]} not found in cluster {context} (kubectl: NotFound)"
             for doc, context in missing]
    raise ResourceNotFoundError("; ".join(lines) + "; nothing was deleted", file=source, field="metadata.name")
