"""The Kubernetes calls of the kind platform, behind a small facade: real (kubernetes client), or recorded.

This is the only module of the harness that imports the Kubernetes client. Every call names its
namespace; `NamespaceGuard` refuses any namespace but the platform's own (parallel-ai, and external-ai
where the external AI API's stand-in runs) before a request leaves. Objects travel as plain JSON
dicts (`_preload_content=False`): the harness reads a few fields and never needs the client's
models, and the same code then runs unchanged against the kmock API emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import NotUpError, PlatformError
from harness.platforms.kind.commands import Recorder

FIELD_MANAGER = "harness"  # server-side apply owner of everything the harness applies


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource: apiVersion (`v1`, `apps/v1`, `networking.istio.io/v1beta1`) and plural."""

    api_version: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def path(self, namespace: str, name: str | None = None) -> str:
        root = f"/api/{self.api_version}" if not self.group else f"/apis/{self.api_version}"
        return f"{root}/namespaces/{namespace}/{self.plural}" + (f"/{name}" if name else "")


PODS = Resource("v1", "pods")
DEPLOYMENTS = Resource("apps/v1", "deployments")
SECRETS = Resource("v1", "secrets")  # read: Istio's cacerts; created and deleted: a security probe's identities


def selector_text(selector: Mapping[str, str] | None) -> str:
    """`app=ai-agent,version=v1`: an equality-based label selector, keys sorted."""
    return ",".join(f"{key}={value}" for key, value in sorted((selector or {}).items()))


def matches(obj: Mapping[str, Any], selector: Mapping[str, str] | None) -> bool:
    """Whether an object's labels carry every key=value of the selector."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in (selector or {}).items())


class KubeApi(Protocol):
    """What the kind platform asks of one cluster's API server."""

    context: str

    def list(self, resource: Resource, namespace: str, selector: Mapping[str, str] | None = None) -> list[dict]:
        """Objects of `resource` whose labels match `selector` (filtered here too, whatever the server did)."""

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        """The object, or None when it does not exist."""

    def apply(self, resource: Resource, namespace: str, document: dict) -> dict:
        """Server-side apply of `document` (field manager `harness`, forced)."""

    def patch(self, resource: Resource, namespace: str, name: str, patch: dict) -> dict:
        """A JSON merge patch (RFC 7386: null removes a key)."""

    def create(self, resource: Resource, namespace: str, document: dict) -> dict:
        """Create a Pod or Secret (a short-lived security probe); an existing one is an error."""

    def delete(self, resource: Resource, namespace: str, name: str, *, grace_period_s: int | None = None) -> bool:
        """Delete the object; False when it was already gone."""


class ClientKube:
    """KubeApi over the official kubernetes client, for one context."""

    def __init__(self, api_client: Any, context: str) -> None:
        from kubernetes import client

        self.context = context
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_kubeconfig(cls, context: str, kubeconfig: Path | None = None) -> "ClientKube":
        """A client for `context` of the kubeconfig; NotUpError when the context does not exist."""
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            api_client = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None,
                                                       context=context)
        except (ConfigException, OSError) as exc:
            raise NotUpError(f"no usable kube context {context!r} ({exc}); is the kind cluster up? "
                             "run `harness up --platform kind`") from exc
        return cls(api_client, context)

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call; its JSON body, or None for a 404 (the caller decides what absence means)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = function(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PlatformError(f"Kubernetes API ({self.context}) {what} failed: {exc.status} {exc.reason}: "
                                f"{_status_message(exc.body)}") from exc
        except HTTPError as exc:
            raise NotUpError(f"the Kubernetes API of {self.context} is unreachable ({what}): {exc}") from exc
        data = response.data
        return json.loads(data) if data else {}

    def list(self, resource: Resource, namespace: str, selector: Mapping[str, str] | None = None) -> list[dict]:
        label_selector = selector_text(selector) or None
        what = f"GET {resource.path(namespace)}"
        if resource == PODS:
            body = self._call(what, self._core.list_namespaced_pod, namespace, label_selector=label_selector)
        elif resource == DEPLOYMENTS:
            body = self._call(what, self._apps.list_namespaced_deployment, namespace, label_selector=label_selector)
        else:
            body = self._call(what, self._custom.list_namespaced_custom_object, resource.group, resource.version,
                              namespace, resource.plural, label_selector=label_selector)
        return [item for item in (body or {}).get("items", []) if matches(item, selector)]

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        what = f"GET {resource.path(namespace, name)}"
        if resource == PODS:
            return self._call(what, self._core.read_namespaced_pod, name, namespace)
        if resource == DEPLOYMENTS:
            return self._call(what, self._apps.read_namespaced_deployment, name, namespace)
        if resource == SECRETS:
            return self._call(what, self._core.read_namespaced_secret, name, namespace)
        return self._call(what, self._custom.get_namespaced_custom_object, resource.group, resource.version,
                          namespace, resource.plural, name)

    def apply(self, resource: Resource, namespace: str, document: dict) -> dict:
        name = document["metadata"]["name"]
        what = f"server-side apply {resource.path(namespace, name)}"
        if resource in (PODS, DEPLOYMENTS, SECRETS):
            raise PlatformError(f"{what}: the harness applies only Istio objects through the API")
        result = self._call(what, self._custom.patch_namespaced_custom_object, resource.group, resource.version,
                            namespace, resource.plural, name, document, field_manager=FIELD_MANAGER, force=True,
                            _content_type="application/apply-patch+yaml")
        if result is None:
            raise PlatformError(f"Kubernetes API ({self.context}) {what} failed: 404 (is the {resource.plural} "
                                "CRD installed? Istio must be up)")
        return result

    def patch(self, resource: Resource, namespace: str, name: str, patch: dict) -> dict:
        what = f"PATCH {resource.path(namespace, name)}"
        if resource == DEPLOYMENTS:
            result = self._call(what, self._apps.patch_namespaced_deployment, name, namespace, patch,
                                _content_type="application/merge-patch+json")
        elif resource == PODS:
            result = self._call(what, self._core.patch_namespaced_pod, name, namespace, patch,
                                _content_type="application/merge-patch+json")
        else:
            result = self._call(what, self._custom.patch_namespaced_custom_object, resource.group, resource.version,
                                namespace, resource.plural, name, patch,
                                _content_type="application/merge-patch+json")
        if result is None:
            raise PlatformError(f"Kubernetes API ({self.context}) {what} failed: 404, no such object")
        return result

    def create(self, resource: Resource, namespace: str, document: dict) -> dict:
        what = f"POST {resource.path(namespace)} ({document['metadata']['name']})"
        if resource == PODS:
            result = self._call(what, self._core.create_namespaced_pod, namespace, document)
        elif resource == SECRETS:
            result = self._call(what, self._core.create_namespaced_secret, namespace, document)
        else:
            raise PlatformError(f"{what}: the harness creates only Pods and Secrets (security probes) this way")
        if result is None:
            raise PlatformError(f"Kubernetes API ({self.context}) {what} failed: 404 (namespace {namespace} missing?)")
        return result

    def delete(self, resource: Resource, namespace: str, name: str, *, grace_period_s: int | None = None) -> bool:
        what = f"DELETE {resource.path(namespace, name)}"
        if resource == PODS:
            result = self._call(what, self._core.delete_namespaced_pod, name, namespace,
                                grace_period_seconds=grace_period_s)
        elif resource == SECRETS:
            result = self._call(what, self._core.delete_namespaced_secret, name, namespace)
        elif resource == DEPLOYMENTS:
            raise PlatformError(f"{what}: the harness scales Deployments, it never deletes them")
        else:
            result = self._call(what, self._custom.delete_namespaced_custom_object, resource.group,
                                resource.version, namespace, resource.plural, name,
                                grace_period_seconds=grace_period_s)
        return result is not None


class RecordingKube:
    """KubeApi that records each call as an `API` line and changes nothing (reads find nothing)."""

    def __init__(self, recorder: Recorder, context: str) -> None:
        self.recorder = recorder
        self.context = context

    def _add(self, text: str) -> None:
        self.recorder.add(f"API {self.context} {text}")

    def list(self, resource: Resource, namespace: str, selector: Mapping[str, str] | None = None) -> list[dict]:
        query = f"?labelSelector={selector_text(selector)}" if selector else ""
        self._add(f"GET {resource.path(namespace)}{query}")
        return []

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        self._add(f"GET {resource.path(namespace, name)}")
        return None

    def apply(self, resource: Resource, namespace: str, document: dict) -> dict:
        self._add(f"PATCH {resource.path(namespace, document['metadata']['name'])} "
                  f"(server-side apply, fieldManager={FIELD_MANAGER}, force)")
        return document

    def patch(self, resource: Resource, namespace: str, name: str, patch: dict) -> dict:
        self._add(f"PATCH {resource.path(namespace, name)} {json.dumps(patch, sort_keys=True)}")
        return patch

    def create(self, resource: Resource, namespace: str, document: dict) -> dict:
        self._add(f"POST {resource.path(namespace)} ({document['metadata']['name']})")
        return document

    def delete(self, resource: Resource, namespace: str, name: str, *, grace_period_s: int | None = None) -> bool:
        grace = f" gracePeriodSeconds={grace_period_s}" if grace_period_s is not None else ""
        self._add(f"DELETE {resource.path(namespace, name)}{grace}")
        return True


class NamespaceGuard:
    """Wraps a KubeApi so that no call can reach a namespace other than the allowed ones (an allow-list:
    the kind platform passes parallel-ai and external-ai, the two namespaces it creates and owns)."""

    def __init__(self, inner: KubeApi, *namespaces: str) -> None:
        if not namespaces:
            raise ValueError("NamespaceGuard needs at least one allowed namespace")
        self.inner = inner
        self.namespaces = namespaces
        self.context = inner.context

    def _check(self, namespace: str, what: str) -> None:
        if namespace not in self.namespaces:
            allowed = " and ".join(repr(name) for name in self.namespaces)
            raise PlatformError(f"refusing to {what} in namespace {namespace!r}: the harness touches only {allowed}")

    def list(self, resource: Resource, namespace: str, selector: Mapping[str, str] | None = None) -> list[dict]:
        self._check(namespace, f"list {resource.plural}")
        return self.inner.list(resource, namespace, selector)

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        self._check(namespace, f"read {resource.plural}/{name}")
        return self.inner.get(resource, namespace, name)

    def apply(self, resource: Resource, namespace: str, document: dict) -> dict:
        self._check(namespace, f"apply {resource.plural}/{document['metadata']['name']}")
        return self.inner.apply(resource, namespace, document)

    def patch(self, resource: Resource, namespace: str, name: str, patch: dict) -> dict:
        self._check(namespace, f"patch {resource.plural}/{name}")
        return self.inner.patch(resource, namespace, name, patch)

    def create(self, resource: Resource, namespace: str, document: dict) -> dict:
        self._check(namespace, f"create {resource.plural}/{document['metadata']['name']}")
        return self.inner.create(resource, namespace, document)

    def delete(self, resource: Resource, namespace: str, name: str, *, grace_period_s: int | None = None) -> bool:
        self._check(namespace, f"delete {resource.plural}/{name}")
        return self.inner.delete(resource, namespace, name, grace_period_s=grace_period_s)


def _status_message(body: Any) -> str:
    """The `message` of a Kubernetes Status body, else the body itself, shortened."""
    try:
        return str(json.loads(body).get("message") or body)[:500]
    except (TypeError, ValueError, AttributeError):
        return str(body)[:500]
