"""The state folder: one per machine whatever the working directory, and never a user's folder removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.local.settings import LocalSettings
from harness.state import MARKER, STATE_ENTRIES, claim_state_dir, default_state_dir, remove_state

ROOT = Path(__file__).parents[2]


def test_the_default_follows_xdg_state_home_then_the_home_folder(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """XDG Base Directory spec: $XDG_STATE_HOME, default $HOME/.local/state; a relative value is ignored."""
    monkeypatch.delenv("HARNESS_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "mesh-harness"
    assert LocalSettings.from_env().state_dir == tmp_path / "xdg" / "mesh-harness"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "mesh-harness"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert LocalSettings.from_env().state_dir == tmp_path / "home" / ".local" / "state" / "mesh-harness"


def test_the_test_session_never_uses_the_users_real_state_folder() -> None:
    real = Path.home() / ".local" / "state" / "mesh-harness"
    assert Path(os.environ["HARNESS_STATE_DIR"]) != real
    assert default_state_dir() != real


def test_status_from_another_folder_finds_the_same_state(tmp_path: Path) -> None:
    """Two working directories, one environment: both name the same state folder (not ./.harness)."""
    code = "from harness.platforms.local.platform import LocalPlatform; print(LocalPlatform.from_env().state_dir)"
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_STATE_DIR"}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    seen = set()
    for cwd in (tmp_path, ROOT):
        result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=60, check=True)
        seen.add(result.stdout.strip())
    assert seen == {str(tmp_path / "xdg" / "mesh-harness")}


def test_a_users_folder_is_never_claimed_nor_removed(tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "logs").mkdir()  # a name the harness also uses: still not the harness's
    (folder / "logs" / "app.log").write_text("mine too")
    with pytest.raises(ConfigError, match="not empty and is not a harness state folder") as claimed:
        claim_state_dir(folder)
    assert claimed.value.field == "HARNESS_STATE_DIR"
    with pytest.raises(ConfigError, match="nothing in it was removed"):
        remove_state(folder)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "logs" / "app.log").exists()
    assert not (folder / MARKER).exists()


def test_only_the_harness_entries_are_removed_and_the_folder_once_empty(tmp_path: Path) -> None:
    state = claim_state_dir(tmp_path / "state")
    for name in ("logs", "pki", "proxies", "ledger"):
        (state / name).mkdir()
        (state / name / "file").write_text("x")
    (state / "pids.json").write_text("{}")
    (state / "added-by-user.txt").write_text("keep")
    assert remove_state(state) == ["added-by-user.txt"]
    assert sorted(p.name for p in state.iterdir()) == sorted([MARKER, "added-by-user.txt"])
    (state / "added-by-user.txt").unlink()
    (state / "kind-ledger-parallel-ai").mkdir()  # the kind clusters' ledger: kept, and not reported as foreign
    assert remove_state(state) == [] and (state / "kind-ledger-parallel-ai").is_dir()
    (state / "kind-ledger-parallel-ai").rmdir()
    assert remove_state(state) == [] and not state.exists()
    assert "ledger" in STATE_ENTRIES


def test_an_empty_folder_is_claimed_and_marked(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert (claim_state_dir(tmp_path / "empty") / MARKER).is_file()
    assert oct((tmp_path / "empty" / MARKER).stat().st_mode & 0o777) == "0o600"


def test_up_and_down_on_a_users_folder_fail_clearly_and_leave_it_whole(tmp_path: Path) -> None:
    """`harness up`/`down` with HARNESS_STATE_DIR naming a user's folder: exit 2 naming the folder and the
    variable, every file still there (they used to shutil.rmtree it)."""
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "pids.json").write_text('{"not": "ours"}')
    env = {**os.environ, "HARNESS_STATE_DIR": str(folder)}
    for command in ("down", "up"):
        result = subprocess.run([sys.executable, "-m", "harness.cli", command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert str(folder) in result.stderr and "HARNESS_STATE_DIR" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["pids.json", "thesis.tex"]
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_down_of_a_mesh_that_never_ran_removes_only_an_empty_state_folder(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    platform = LocalPlatform(LocalSettings(state_dir=tmp_path / "state"))
    assert platform.down() == []
    assert not (tmp_path / "state").exists()
