"""The harness as a Chaos Toolkit extension: actions and probes, discoverable with `chaos discover harness`."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Chaos Toolkit's discovery entry point: every public action and probe of the harness."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery = initialize_discovery_result("mesh-resilience-harness", __version__, "harness")
    discovery["activities"].extend(discover_actions("harness.chaos.actions"))
    discovery["activities"].extend(discover_probes("harness.chaos.probes"))
    discovery["activities"].extend(discover_actions("harness.chaos.policies"))  # the security experiments'
    discovery["activities"].extend(discover_probes("harness.chaos.security"))
    return discovery
