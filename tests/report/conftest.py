"""Fixtures for report tests: fresh copies of the real run directories in tests/report/data, journals edited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.report.reportkit import DATA, RunFactory


@pytest.fixture(autouse=True)
def shipped_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Advice reads the shipped manifests, whatever HARNESS_MANIFESTS_DIR the caller's shell has."""
    monkeypatch.delenv("HARNESS_MANIFESTS_DIR", raising=False)


@pytest.fixture
def run_dir(tmp_path: Path) -> RunFactory:
    """copy(name, **harness_changes) -> a fresh copy of a fixture run directory, its journal edited."""

    def copy(name: str, *, into: str | None = None, journal: dict[str, Any] | None = None,
             **harness_changes: Any) -> Path:
        target = tmp_path / (into or name)
        shutil.copytree(DATA / name, target)
        if harness_changes or journal:
            path = target / "journal.json"
            data = json.loads(path.read_text())
            data["harness"].update(harness_changes)
            data.update(journal or {})
            path.write_text(json.dumps(data))
        return target

    return copy
