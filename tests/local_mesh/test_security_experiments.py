"""The security suite run for real (`harness run`): the seed's policy as written fails the run for the
right reason, a path-normalisation bypass is denied; each probe's verdict is an SLO-style row."""

from __future__ import annotations

from pathlib import Path

from tests.local_mesh.meshkit import Mesh
from tests.local_mesh.test_experiment_runs import EXPERIMENTS, assert_mesh_restored, run


def _security_rows(journal: dict) -> list[dict]:
    return [r for r in journal["harness"]["slo_results"] if r["source"] == "security"]


def test_the_seed_policy_as_written_lets_an_unauthorised_principal_in_and_fails_the_run(
        mesh: Mesh, tmp_path: Path) -> None:
    """Istio AuthorizationPolicy reference: rules are ORed; the seed's second rule has no `from`."""
    code, journal, output = run(mesh, EXPERIMENTS / "security-seed-authz-as-written.yaml", tmp_path)
    assert code == 1, output
    assert journal["deviated"] is True
    rows = _security_rows(journal)
    before, after = rows[0], rows[-1]
    assert before["verdict"] == "pass" and before["phase"] == "baseline"
    assert after["verdict"] == "fail" and after["phase"] == "chaos"
    assert after["detail"] == "POST /api/v1/chat as user-service: 200"
    assert "security:unauthorised-denied" in (tmp_path / "report.html").read_text()
    assert_mesh_restored(mesh, journal)


def test_path_normalisation_bypass_attempts_are_denied_in_a_run(mesh: Mesh, tmp_path: Path) -> None:
    """Istio security best practices: paths are normalised (BASE) before authorization."""
    code, journal, output = run(mesh, EXPERIMENTS / "security-path-normalisation.yaml", tmp_path)
    assert code == 0, output
    (row,) = _security_rows(journal)
    assert row["verdict"] == "pass" and row["phase"] == "chaos" and row["value"] == 1.0
    assert row["detail"].count(": 403") == 5
    assert_mesh_restored(mesh, journal)
