"""The kind platform's safety rules: which kube contexts it may act on, and its blast-radius limit.

A context is a kind cluster's when its name starts with kind- AND its API server is where kind puts one:
on the host's loopback (kind's default apiServerAddress 127.0.0.1) or on a Docker network (the
private ranges Docker allocates networks from, kind's own `kind` network among them). A context named
kind-* that points anywhere else (a renamed production context) is refused like any other, unless
--allow-context names exactly that context.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from harness.errors import ConfigError

KIND_CONTEXT_PREFIX = "kind-"
#: Where Docker allocates bridge networks (its default address pools) and kind's IPv6 network (ULA).
DOCKER_NETWORKS = tuple(ipaddress.ip_network(net) for net in ("172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
DEFAULT_KUBECONFIG = Path.home() / ".kube" / "config"


def kubeconfig_files(kubeconfig: Path | None) -> list[Path]:
    """The files kubectl would read: the one given, else $KUBECONFIG's list, else ~/.kube/config."""
    if kubeconfig is not None:
        return [kubeconfig]
    listed = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [DEFAULT_KUBECONFIG]


def context_server(context: str, kubeconfig: Path | None) -> str | None:
    """The API server URL of `context` in the kubeconfig, or None when no file defines the context (kind
    has not created it yet). Merged as kubectl merges: the first file that defines a name wins."""
    contexts: dict[str, str] = {}
    clusters: dict[str, str] = {}
    for path in kubeconfig_files(kubeconfig):
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the kubeconfig: {exc}", file=path) from exc
        for entry in config.get("contexts") or []:
            contexts.setdefault(str(entry.get("name")), str((entry.get("context") or {}).get("cluster")))
        for entry in config.get("clusters") or []:
            clusters.setdefault(str(entry.get("name")), str((entry.get("cluster") or {}).get("server", "")))
    if context not in contexts:
        return None
    return clusters.get(contexts[context], "")


def is_kind_server(server: str) -> bool:
    """Whether an API server URL is on the host's loopback or a Docker network address."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a DNS name: not where kind puts an API server
    return address.is_loopback or any(address in network for network in DOCKER_NETWORKS)


def check_context(context: str, allow_context: str | None, server: str | None = None) -> None:
    """Refuse any context that is not a kind cluster's (by name and, when known, by server address),
    unless the user named exactly that one."""
    if allow_context is not None and context == allow_context:
        return
    hint = (f"--allow-context {context} (HARNESS_ALLOW_CONTEXT={context})" if allow_context is None else
            f"--allow-context names {allow_context!r}, not this one")
    if not context.startswith(KIND_CONTEXT_PREFIX):
        raise ConfigError(f"refusing to act on kube context {context!r}: the kind platform acts only on contexts "
                          f"named kind-*, unless {hint}", field="context")
    if server is not None and not is_kind_server(server):
        raise ConfigError(f"refusing to act on kube context {context!r}: its API server {server or '(none)'} is "
                          "neither on 127.0.0.1 nor on a Docker network, where kind puts one; if this cluster "
                          f"really is yours to break, {hint}", field="context")


def check_blast_radius(service: str, total: int, down_after: int, max_percent: float) -> None:
    """At most `max_percent` of a service's pods may be down at once because of the harness."""
    limit = math.floor(total * max_percent / 100 + 1e-9)
    if down_after > limit:
        raise ConfigError(f"taking one more {service} pod down would leave {down_after} of {total} down, over the "
                          f"blast-radius limit of {max_percent:g}% ({limit} pod(s)); raise it explicitly with "
                          "--max-percent or HARNESS_MAX_PERCENT to allow it", field="max_percent")
