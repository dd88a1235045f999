"""The service environment: defaults, errors that name the variable, and exit code 2 from the entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.services import from_env
from harness.services.outbound import Destination, server_name, target
from tests.services.servicekit import REPO, TlsPair, service_env


def test_the_public_surface_is_the_sorted_all() -> None:
    import harness.services

    assert harness.services.__all__ == sorted(harness.services.__all__)
    assert all(hasattr(harness.services, name) for name in harness.services.__all__)


def test_defaults_follow_the_architecture_page() -> None:
    config = from_env({"SERVICE_NAME": "ai-agent", "POD_NAME": "ai-agent-v1-us-east-0"})
    assert config.port == 8080
    assert config.host == "0.0.0.0"
    assert config.user_service_host == "user-service"
    assert config.analytics_service_host == "analytics-service"
    assert config.external_ai_host == "api.openai.com"
    assert (config.ai_latency_ms, config.ai_jitter_ms) == (20.0, 5.0)
    assert config.mesh_outbound is None
    assert config.upstream_timeout_s == 10.0
    assert config.pod_name == "ai-agent-v1-us-east-0"


def test_empty_variables_count_as_unset() -> None:
    config = from_env({"SERVICE_NAME": "user", "PORT": "", "MESH_OUTBOUND": " "})
    assert config.port == 8080
    assert config.mesh_outbound is None


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PORT", "abc", "expected a port number 1-65535; got 'abc'"),
        ("PORT", "70000", "expected a port number 1-65535"),
        ("AI_LATENCY_MS", "-1", "expected a number >= 0"),
        ("AI_JITTER_MS", "lots", "expected a number >= 0"),
        ("UPSTREAM_TIMEOUT_S", "0", "expected a number >= 0.001"),
        ("UPSTREAM_TIMEOUT_S", "nan", "expected a number"),
        ("MESH_OUTBOUND", "127.0.0.1:15001", "expected a URL like http://127.0.0.1:15001"),
        ("MESH_OUTBOUND", "http://127.0.0.1:15001/api", "no path"),
        ("USER_SERVICE_HOST", "http://user-service", "expected a host name"),
        ("EXTERNAL_AI_HOST", "api.openai.com/v1", "expected a host name"),
        ("POD_NAME", "pod\r\nx-evil: 1", "expected letters, digits"),
        ("REGION", "us east", "expected letters, digits"),
        ("HOST", "127.0.0.1:8080", "expected an IP address or host name to bind"),
    ],
)
def test_a_bad_variable_is_an_error_naming_it_and_what_was_expected(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"SERVICE_NAME": "user", variable: value})
    assert caught.value.field == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert expected in str(caught.value)


def test_service_name_must_be_one_of_the_four_services() -> None:
    with pytest.raises(
        ConfigError,
        match="SERVICE_NAME: expected one of ai-agent, analytics, user, external-ai-api; got unset",
    ):
        from_env({})


def test_tls_is_only_for_the_external_ai_api(tls_pair: TlsPair) -> None:
    with pytest.raises(ConfigError, match="TLS_CERT_FILE: only external-ai-api serves TLS"):
        from_env(
            {
                "SERVICE_NAME": "user",
                "TLS_CERT_FILE": str(tls_pair.cert_file),
                "TLS_KEY_FILE": str(tls_pair.key_file),
            }
        )


def test_tls_needs_both_files_and_they_must_exist(tls_pair: TlsPair, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS_KEY_FILE: expected TLS_CERT_FILE and TLS_KEY_FILE together"):
        from_env({"SERVICE_NAME": "external-ai-api", "TLS_CERT_FILE": str(tls_pair.cert_file)})
    with pytest.raises(ConfigError, match="TLS_KEY_FILE: expected a readable file"):
        from_env(
            {
                "SERVICE_NAME": "external-ai-api",
                "TLS_CERT_FILE": str(tls_pair.cert_file),
                "TLS_KEY_FILE": str(tmp_path / "missing.key"),
            }
        )


def test_a_certificate_that_does_not_load_is_named(tls_pair: TlsPair, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="TLS_CERT_FILE: expected a PEM certificate matching TLS_KEY_FILE"):
        from_env(
            {
                "SERVICE_NAME": "external-ai-api",
                "TLS_CERT_FILE": str(garbage),
                "TLS_KEY_FILE": str(tls_pair.key_file),
            }
        )


def test_with_mesh_outbound_every_call_goes_to_the_listener_with_the_destination_as_host() -> None:
    config = from_env({"SERVICE_NAME": "ai-agent", "MESH_OUTBOUND": "http://127.0.0.1:15001/"})
    assert target(config, Destination("user-service"), "/api/v1/users/a") == (
        "http://127.0.0.1:15001/api/v1/users/a",
        "user-service",
    )
    # The external API: the app's own TLS to the same listener, named by SNI (the sidecar passes it through).
    external = Destination("api.openai.com", external=True)
    assert target(config, external, "/v1/chat/completions") == (
        "https://127.0.0.1:15001/v1/chat/completions",
        "api.openai.com",
    )
    assert server_name(config, external) == "api.openai.com"
    assert server_name(config, Destination("user-service")) is None
    assert server_name(from_env({"SERVICE_NAME": "ai-agent"}), external) is None  # direct: the URL names it


def test_without_mesh_outbound_mesh_services_are_called_on_8080_and_the_ai_api_over_https() -> None:
    config = from_env({"SERVICE_NAME": "ai-agent"})
    assert target(config, Destination("user-service"), "/x") == ("http://user-service:8080/x", None)
    assert target(config, Destination("127.0.0.1:9001"), "/x") == ("http://127.0.0.1:9001/x", None)
    assert target(config, Destination("api.openai.com", external=True), "/v1/chat/completions") == (
        "https://api.openai.com/v1/chat/completions",
        None,
    )


def test_an_invalid_port_makes_the_process_exit_2_naming_port() -> None:
    env = service_env("user", "user-bad-port", 0)
    env["PORT"] = "abc"
    result = subprocess.run(
        [sys.executable, "-m", "harness.services"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "PORT: expected a port number 1-65535; got 'abc'" in result.stderr


def test_an_unknown_service_name_makes_the_process_exit_2_naming_service_name() -> None:
    env = service_env("billing", "billing-0", 8080)
    result = subprocess.run(
        [sys.executable, "-m", "harness.services"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "SERVICE_NAME: expected one of" in result.stderr
