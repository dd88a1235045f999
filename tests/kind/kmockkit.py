"""A Kubernetes API for the kind platform's tests: kmock's emulator in a thread, with three fixes, plus a
tiny ReplicaSet controller.

kmock (an in-memory API server on 127.0.0.1) is async and runs its own event loop; the platform uses
the synchronous kubernetes client, so the server lives in a thread of its own and tests stay plain
functions. What kmock 0.8 does differently from a real API server, and what is fixed here:
- it ignores `labelSelector` on lists: equality selectors are applied (anything else is an error, so
  a test cannot pass by accident);
- it answers 200 to a create, where the kubernetes client (37) expects 201: creates answer 201;
- it has no server-side apply: an apply-patch creates a missing object, and replaces the fields of an
  existing one (as apply does for the one field manager the harness uses), deleting what it omits.
There is no controller in kmock either: `reconcile` plays the ReplicaSet's part when a test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import threading
from typing import Any

import attrs
import httpx
import kmock
from kubernetes import client

NAMESPACE = "parallel-ai"
RESOURCES = (
    "v1/pods", "v1/secrets", "apps/v1/deployments", "networking.istio.io/v1beta1/virtualservices",
    "networking.istio.io/v1beta1/destinationrules", "networking.istio.io/v1beta1/gateways",
    "networking.istio.io/v1beta1/serviceentries", "security.istio.io/v1beta1/peerauthentications",
    "security.istio.io/v1beta1/authorizationpolicies", "telemetry.istio.io/v1alpha1/telemetries",
)
_SERVER_KEYS = ("metadata", "status", "apiVersion", "kind")


def selects(selector: str, labels: dict[str, str]) -> bool:
    """An equality-based label selector (`a=b,c!=d`), as the API server applies it."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        else:
            raise ValueError(f"unsupported label selector term {term!r} (the emulator does equality only)")
    return True


def replacing_patch(current: Any, desired: Any) -> Any:
    """A merge patch that turns `current` into `desired` (null for every key `desired` drops)."""
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return desired
    patch = {key: replacing_patch(current.get(key), value) for key, value in desired.items()}
    patch.update({key: None for key in current if key not in desired and key not in _SERVER_KEYS})
    return patch


@attrs.define(kw_only=True)
class KindApiEmulator(kmock.KubernetesEmulator):
    """kmock's stateful emulator with label selectors, 201 on create and server-side apply."""

    async def _handle(self, request: kmock.Request) -> Any:
        content_type = request.headers.get("Content-Type", "")
        if request.method == kmock.method.PATCH and content_type.startswith("application/apply-patch"):
            # Rewritten in place: kmock finds a request's reaction by the identity of the request it recorded.
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                object.__setattr__(request, "action", kmock.action.CREATE)
            else:
                object.__setattr__(request, "data", replacing_patch(self.objects[key].raw, request.data))
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200 and not response.prepared:
            response.set_status(201)
        return response

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            payload["items"] = [item for item in payload["items"]
                                if selects(selector, (item.get("metadata") or {}).get("labels") or {})]
        return payload


class EmulatedCluster:
    """One emulated API server on a random 127.0.0.1 port; `api_client` talks to it. Start one with
    `start()`, or several at once with `EmulatedCluster.start_many` (they share one thread and event
    loop, so kmock's resolver interceptors are entered and left in LIFO order, as it requires)."""

    def __init__(self, context: str = "kind-parallel-ai") -> None:
        self.context = context
        self.url = ""
        self.emulator: KindApiEmulator | None = None
        self._names = itertools.count()
        self._host: _Host | None = None
        # One reconcile pass at a time, as the real ReplicaSet controller syncs a ReplicaSet in one worker:
        # two overlapping passes (the background controller and a test's own call) each count the pods
        # before either creates one, and both create the missing pod.
        self._reconciling = threading.Lock()

    def start(self) -> "EmulatedCluster":
        (started,) = EmulatedCluster.start_many([self])
        return started

    @staticmethod
    def start_many(clusters: list["EmulatedCluster"]) -> list["EmulatedCluster"]:
        host = _Host(clusters)
        host.start()
        for cluster in clusters:
            cluster._host = host
            cluster.http = httpx.Client(base_url=cluster.url, timeout=5.0)
        return clusters

    def stop(self) -> None:
        self.http.close()
        if self._host is not None:
            self._host.stop()


    def api_client(self) -> client.ApiClient:
        configuration = client.Configuration(host=self.url)
        return client.ApiClient(configuration)

    # -- seeding and reading, over HTTP like any client ------------------------------------------

    def create(self, path: str, body: dict) -> dict:
        response = self.http.post(path, json=body)
        assert response.status_code == 201, (response.status_code, response.text)
        return response.json()

    def get(self, path: str) -> dict | None:
        response = self.http.get(path)
        return None if response.status_code == 404 else response.json()

    def items(self, path: str) -> list[dict]:
        return self.http.get(path).json()["items"]

    def put(self, resource: str, doc: dict) -> None:
        """Store an object straight into the emulator (seeding, before the code under test runs) in its
        namespace (default parallel-ai): kmock serves every request in time linear in the requests so far,
        so seeding over HTTP is slow."""
        assert self.emulator is not None
        namespace = doc["metadata"].get("namespace", NAMESPACE)
        self.emulator.objects[resource, namespace, doc["metadata"]["name"]] = doc

    def seed(self, deployments: list[dict], istio: list[dict]) -> None:
        """Deployments with one ready pod per replica, and Istio resources, as `up` leaves them (pods for
        parallel-ai's Deployments only: nothing the harness does reads another namespace's pods)."""
        for doc in deployments:
            self.put("apps/v1/deployments", doc)
            if doc["metadata"].get("namespace", NAMESPACE) != NAMESPACE:
                continue
            for _ in range(int(doc["spec"].get("replicas", 1))):
                self.put("v1/pods", self.pod_for(doc, ready=True))
        for doc in istio:
            self.put(f"{doc['apiVersion']}/{_plural(doc['kind'])}", doc)

    def requests(self, method: str | None = None) -> list[kmock.Request]:
        """What the emulator was asked, oldest first (optionally one HTTP method only)."""
        assert self.emulator is not None
        return [r for r in self.emulator if method is None or r.method.value == method]

    def reconcile(self, *, ready: bool = True) -> None:
        """The ReplicaSet controller's job: each Deployment gets exactly spec.replicas live pods (waits for a
        pass in progress in another thread, then makes its own)."""
        with self._reconciling:
            self._reconcile(ready=ready)

    def _reconcile(self, *, ready: bool) -> None:
        for deployment in self.items(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"):
            selector = deployment["spec"]["selector"]["matchLabels"]
            term = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = self.items(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={term}")
            wanted = int(deployment["spec"].get("replicas", 1))
            for pod in pods[wanted:]:
                self.http.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}")
            for _ in range(wanted - len(pods)):
                self.create(f"/api/v1/namespaces/{NAMESPACE}/pods", self.pod_for(deployment, ready=ready))

    def pod_for(self, deployment: dict, *, ready: bool) -> dict:
        template = deployment["spec"]["template"]
        number = next(self._names)
        created = (datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
                   + datetime.timedelta(seconds=number)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{deployment['metadata']['name']}-7f9c-{number:05d}", "namespace": NAMESPACE,
                         "labels": dict(template["metadata"]["labels"]), "creationTimestamp": created},
            "spec": {"containers": [{"name": c["name"], "image": c["image"]}
                                    for c in template["spec"]["containers"]], "nodeName": "parallel-ai-control-plane"},
            "status": {"phase": "Running", "podIP": f"10.244.0.{number % 250 + 2}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "app", "restartCount": 0, "ready": ready}]},
        }


class _Host:
    """The thread and event loop that serve a group of emulated clusters."""

    def __init__(self, clusters: list[EmulatedCluster]) -> None:
        self.clusters = clusters
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kmock", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the kmock emulator did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"the kmock emulator failed to start: {self._error!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start() instead of dying silently in the thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for cluster in self.clusters:
                emulator = await stack.enter_async_context(KindApiEmulator())
                server = await stack.enter_async_context(kmock.Server(emulator))
                for resource in RESOURCES:
                    emulator.resources[resource] = {}
                cluster.emulator, cluster.url = emulator, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _plural(kind: str) -> str:
    return {"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "Gateway": "gateways",
            "ServiceEntry": "serviceentries", "PeerAuthentication": "peerauthentications",
            "AuthorizationPolicy": "authorizationpolicies", "Telemetry": "telemetries"}[kind]
