"""The proxy settings both platforms take from the seed's IstioOperator profiles.

The kind platform installs Istio with manifests/kind/istio/control-plane.yaml and the profile's
`profile-<name>.yaml` overlaid on it (platforms/kind/render.py); the local platform reads the same two
files for what its proxies honour of `meshConfig.defaultConfig.proxyStatsMatcher`, so one YAML decides
which stats a proxy exports on both. An overlay replaces a list and merges a mapping key by key, as
istioctl does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.mesh.translate.model import StatsInclusion

ISTIO_DIR = MANIFESTS_DIR / "kind" / "istio"
MATCHER_FIELD = "spec.meshConfig.defaultConfig.proxyStatsMatcher"
# istio/api mesh/v1alpha1/proxy.proto ProxyStatsMatcher: inclusion matchers only (istioctl refuses
# anything else, which is why profile-prod.yaml drops the seed's exclusionRegexps).
_KEYS = {"inclusionPrefixes": "prefixes", "inclusionSuffixes": "suffixes", "inclusionRegexps": "regexps"}
# What a run reads from every proxy on either platform beyond a profile's own matchers: the gauge of hosts
# outlier detection has ejected (run/evaluation.EJECTIONS; the gate before a baseline waits for them).
# Istio's default inclusion does not export it, so both platforms add it to the profile's inclusionRegexps.
HARNESS_REGEXPS = (r"cluster\..*\.outlier_detection\.ejections_active",)


def profile_files(profile: str) -> tuple[Path, Path]:
    """The control plane and the profile overlay, in the order istioctl applies them."""
    overlay = ISTIO_DIR / f"profile-{profile}.yaml"
    if not overlay.is_file():
        known = sorted(p.stem.removeprefix("profile-") for p in ISTIO_DIR.glob("profile-*.yaml"))
        raise ConfigError(f"no Istio profile {profile!r}; known: {', '.join(known)}", field="profile")
    return ISTIO_DIR / "control-plane.yaml", overlay


def _matcher(path: Path) -> dict[str, Any]:
    (doc,) = load_yaml_documents(path)
    value: Any = doc
    for key in MATCHER_FIELD.split("."):
        if not isinstance(value, dict) or key not in value:
            return {}
        value = value[key]
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping, got {type(value).__name__}", file=path, field=MATCHER_FIELD)
    return value


def proxy_stats_inclusion(profile: str) -> StatsInclusion:
    """The profile's proxyStatsMatcher as the inclusion matchers the local bootstrap adds to Istio's own."""
    merged: dict[str, Any] = {}
    for path in profile_files(profile):
        for key, values in _matcher(path).items():
            if key not in _KEYS:
                raise ConfigError(f"expected one of {', '.join(_KEYS)} (ProxyStatsMatcher has inclusion matchers "
                                  f"only), got {key!r}", file=path, field=f"{MATCHER_FIELD}.{key}")
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise ConfigError("expected a list of non-empty strings", file=path, field=f"{MATCHER_FIELD}.{key}")
            merged[_KEYS[key]] = tuple(values)  # a list in an overlay replaces the base's
    regexps = merged.get("regexps", ())
    merged["regexps"] = regexps + tuple(r for r in HARNESS_REGEXPS if r not in regexps)
    return StatsInclusion(**merged)


def with_harness_stats(operator: dict[str, Any]) -> dict[str, Any]:
    """An IstioOperator (profile overlaid) with HARNESS_REGEXPS added to its proxyStatsMatcher, in place."""
    config = operator["spec"].setdefault("meshConfig", {}).setdefault("defaultConfig", {})
    regexps = config.setdefault("proxyStatsMatcher", {}).setdefault("inclusionRegexps", [])
    regexps.extend(r for r in HARNESS_REGEXPS if r not in regexps)
    return operator
