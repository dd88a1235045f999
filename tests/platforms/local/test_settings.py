"""Local platform settings from HARNESS_* variables: bad values name the variable and what was expected."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.platforms.local.settings import LocalSettings


def test_a_longer_workload_certificate_lifetime_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CERT_VALIDITY_H", "168")
    assert LocalSettings.from_env().cert_validity_h == 168.0
    assert LocalSettings.from_json(LocalSettings.from_env().to_json()).cert_validity_h == 168.0


@pytest.mark.parametrize("raw, message", [("0", "expected hours between 0 and 8760, got 0.0"),
                                          ("a week", "expected a number, got 'a week'")])
def test_a_bad_certificate_lifetime_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("HARNESS_CERT_VALIDITY_H", raw)
    with pytest.raises(ConfigError, match=f"^HARNESS_CERT_VALIDITY_H: {message}"):
        LocalSettings.from_env()
