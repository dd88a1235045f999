"""LoadSpec validation, the Locust command lines, and the harness.load surface (no process started)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import harness.load
from harness.errors import ConfigError
from harness.load import LoadRun, LoadSpec
from harness.load._command import PLUGIN, child_env, master_argv, worker_argv
from tests.load.loadkit import AI_AGENT, ROOT

LOOPBACK = "http://127.0.0.1:18080"


def spec(**overrides: object) -> LoadSpec:
    fields: dict[str, object] = {"locustfile": AI_AGENT, "users": 2, "spawn_rate": 2, "duration_s": 5, "host": LOOPBACK}
    fields.update(overrides)
    return LoadSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["http://10.0.0.1:80", "http://192.168.1.5:8080", "http://8.8.8.8:80",
                                  "http://example.com:80", "http://localhost:18080", "http://[::1]:18080"])
def test_a_target_outside_127_0_0_0_8_is_refused_before_any_process_starts(host: str) -> None:
    with pytest.raises(ConfigError) as refused:
        spec(host=host)
    assert refused.value.field == "host"
    assert "127.0.0.0/8" in str(refused.value)


@pytest.mark.parametrize("host", ["ftp://127.0.0.1:21", "http://127.0.0.1", "http://127.0.0.1:80/api",
                                  "http://user:pw@127.0.0.1:80", "not a url"])
def test_a_host_must_be_scheme_loopback_address_and_port_only(host: str) -> None:
    with pytest.raises(ConfigError, match="host"):
        spec(host=host)


def test_any_127_address_with_a_port_is_accepted() -> None:
    assert spec(host="http://127.3.2.1:9").host == "http://127.3.2.1:9"


def test_a_missing_locustfile_is_a_config_error_naming_the_file_and_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.py"
    with pytest.raises(ConfigError) as error:
        spec(locustfile=missing)
    assert error.value.field == "locustfile"
    assert error.value.file == str(missing)
    assert str(missing) in str(error.value)


def test_errors_name_the_source_file_when_one_is_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        spec(locustfile=tmp_path / "gone.py", source="experiments/pod-kill.yaml")
    assert error.value.file == "experiments/pod-kill.yaml"
    assert "gone.py" in str(error.value)


@pytest.mark.parametrize(("field", "value"), [
    ("users", 0), ("users", 1.5), ("users", True), ("spawn_rate", 0), ("spawn_rate", float("nan")),
    ("duration_s", -1), ("workers", -1), ("workers", 1000), ("shape", "sawtooth"),
    ("think_time_s", (2.0, 1.0)), ("think_time_s", (-1.0, 1.0)), ("think_time_s", [0.5, 1.0]),
    ("host_header", "two words"), ("extra_env", {"A": 1}), ("stop_timeout_s", -1),
])
def test_each_invalid_field_is_a_config_error_naming_it(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as error:
        spec(**{field: value})
    assert error.value.field == field


def test_a_spec_is_frozen_and_its_locustfile_made_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    made = spec(locustfile=Path("locustfiles/ai_agent.py"), extra_env={"A": "1"})
    assert made.locustfile == AI_AGENT
    with pytest.raises(AttributeError):
        made.users = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        made.extra_env["B"] = "2"  # type: ignore[index]


def test_the_standalone_command_is_headless_with_csv_and_the_recorder_beside_the_locustfile(tmp_path: Path) -> None:
    argv = master_argv(spec(users=7, spawn_rate=3, duration_s=4.2), tmp_path, None)
    assert argv[:3] == [sys.executable, "-m", "locust"]
    assert argv[argv.index("-f") + 1] == f"{AI_AGENT},{PLUGIN}"
    assert {"--headless", "--csv-full-history", "--only-summary"} <= set(argv)
    assert argv[argv.index("--csv") + 1] == str(tmp_path / "locust")
    assert argv[argv.index("-u") + 1] == "7" and argv[argv.index("-t") + 1] == "5s"
    assert "--master" not in argv


def test_with_workers_the_master_binds_loopback_and_workers_connect_there(tmp_path: Path) -> None:
    workers = spec(workers=2)
    master = master_argv(workers, tmp_path, 45678)
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"
    assert master[master.index("--expect-workers") + 1] == "2"
    worker = worker_argv(workers, 45678)
    assert "--worker" in worker and worker[worker.index("--master-host") + 1] == "127.0.0.1"
    assert worker[worker.index("--master-port") + 1] == "45678"


def test_a_shape_is_passed_by_environment_instead_of_users_and_run_time(tmp_path: Path) -> None:
    shaped = spec(shape="spike", users=9, spawn_rate=3, duration_s=30)
    argv = master_argv(shaped, tmp_path, None)
    assert "-u" not in argv and "-t" not in argv
    env = child_env(shaped, tmp_path, {})
    assert (env["HARNESS_LOAD_SHAPE"], env["HARNESS_USERS"], env["HARNESS_DURATION_S"]) == ("spike", "9", "30")


def test_the_child_environment_drops_inherited_locust_settings_and_carries_the_spec(tmp_path: Path) -> None:
    made = spec(host_header="h.local", think_time_s=(0.0, 0.5), extra_env={"HARNESS_TIER_WEIGHTS": "canary=1"})
    env = child_env(made, tmp_path, {"LOCUST_HOST": "http://10.0.0.1", "HARNESS_LOAD_SHAPE": "soak", "PATH": "/bin"})
    assert "LOCUST_HOST" not in env and "HARNESS_LOAD_SHAPE" not in env
    assert env["HARNESS_INGRESS_HOST"] == "h.local" and env["HARNESS_THINK_TIME"] == "0.0,0.5"
    assert env["HARNESS_TIER_WEIGHTS"] == "canary=1" and env["PATH"] == "/bin"
    assert env["HARNESS_LOAD_RUN_DIR"] == str(tmp_path)


def test_a_run_not_started_has_no_processes() -> None:
    run = LoadRun(spec())
    assert run.pids == () and not run.running
    run.stop()  # harmless


def test_the_public_names_are_sorted_and_each_resolves() -> None:
    assert harness.load.__all__ == sorted(harness.load.__all__)
    for name in harness.load.__all__:
        assert getattr(harness.load, name) is not None


def test_importing_harness_load_imports_neither_locust_nor_gevent() -> None:
    code = "import sys, harness.load; print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
