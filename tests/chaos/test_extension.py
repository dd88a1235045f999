"""The harness as a Chaos Toolkit extension: one place exports every action and probe, and discovery finds them."""

from __future__ import annotations

import inspect
import typing

from harness import discover
from harness.chaos import actions, policies, probes, security

EXPECTED_ACTIONS = {"kill_pods", "inject_delay", "inject_abort", "remove_faults", "fail_region", "restore_region",
                    "scale"}
EXPECTED_PROBES = {"slo", "prometheus_query", "all_pods_ready"}
EXPECTED_SECURITY_PROBES = {"mtls_refused", "unauthorised_request_denied", "path_bypass_denied",
                            "gateway_request_denied"}


def test_actions_and_probes_are_exported_sorted_from_one_place() -> None:
    assert set(actions.__all__) == EXPECTED_ACTIONS and actions.__all__ == sorted(actions.__all__)
    assert set(probes.__all__) == EXPECTED_PROBES and probes.__all__ == sorted(probes.__all__)
    assert policies.__all__ == ["apply_policy"]
    assert set(security.__all__) == EXPECTED_SECURITY_PROBES and security.__all__ == sorted(security.__all__)


def test_every_action_and_probe_is_typed_documented_and_keyword_callable() -> None:
    for module in (actions, probes, policies, security):
        for name in module.__all__:
            func = getattr(module, name)
            assert func.__doc__, name
            hints = typing.get_type_hints(func)
            for parameter in inspect.signature(func).parameters.values():
                assert parameter.name in hints, f"{name}.{parameter.name} has no type"
                assert parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)


def test_chaos_toolkit_discovery_lists_actions_as_actions_and_probes_as_probes() -> None:
    found = {(a["type"], a["name"]) for a in discover()["activities"]}
    assert found == ({("action", n) for n in EXPECTED_ACTIONS | {"apply_policy"}}
                     | {("probe", n) for n in EXPECTED_PROBES | EXPECTED_SECURITY_PROBES})
