"""Bad input is exit 2 naming the file, the field and what was expected; never a traceback.

The corpus (experiments/, slos/, runs/, written by make_corpus.py) holds one malformed file per case:
every case issue 9 lists (an experiment that is a YAML list, `provider: foo`, `users: 1e9`,
`delay_ms: .nan`, an SLO file with non-UTF-8 bytes or a 5,000-digit objective, a journal with NaN
or a non-numeric latency, ...) and their neighbours. Each goes through the real command line
(harness.cli.main) as a user would run it: `validate` for experiments and SLO files, `report` and
`compare` (both ways round) for run directories; paths with a NUL byte or a 5,000-character name
are given on the command line itself. A case passes when the exit code is 2, stderr names the file
and the field, and no traceback is printed (main() would raise instead of returning).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness.cli import main

HERE = Path(__file__).parent
EXPERIMENTS = sorted((HERE / "experiments").iterdir())
SLOS = sorted((HERE / "slos").iterdir())
RUNS = sorted((HERE / "runs").iterdir())
VALID_RUN = HERE / "valid-run"
VALID_EXPERIMENT = HERE / "valid-experiment.yaml"


def _expected_field(path: Path) -> str:
    source = path / "expect.txt" if path.is_dir() else path
    first = source.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith(("# field: ", "field: ")), f"{source} does not say which field its error names"
    return first.split("field: ", 1)[1]


def _case(kind: str, path: Path) -> object:
    return pytest.param(kind, path, id=f"{kind}/{path.name}")


CASES = ([_case("experiment", p) for p in EXPERIMENTS] + [_case("slo", p) for p in SLOS]
         + [_case("report", p) for p in RUNS] + [_case("compare-run", p) for p in RUNS]
         + [_case("compare-baseline", p) for p in RUNS])


def test_the_corpus_holds_at_least_sixty_malformed_files() -> None:
    assert len(EXPERIMENTS) + len(SLOS) + len(RUNS) >= 60


@pytest.mark.parametrize(("kind", "path"), CASES)
def test_each_malformed_input_is_exit_2_naming_file_and_field(kind: str, path: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    field = _expected_field(path)
    if kind == "experiment":
        named, argv = path, ["validate", str(path)]
    elif kind == "slo":
        experiment = yaml.safe_load(VALID_EXPERIMENT.read_text())
        arguments = experiment["controls"][0]["provider"]["arguments"]
        arguments["slo_file"] = str(path)
        arguments.pop("slos")
        written = tmp_path / "uses-the-bad-slo-file.yaml"
        written.write_text(yaml.safe_dump(experiment))
        named, argv = path, ["validate", str(written)]
    else:
        run = shutil.copytree(path, tmp_path / path.name)  # `report` writes into the run directory
        good = shutil.copytree(VALID_RUN, tmp_path / "good")
        named = run
        argv = {"report": ["report", str(run)], "compare-run": ["compare", str(run), str(good)],
                "compare-baseline": ["compare", str(good), str(run)]}[kind]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr: {err}"
    assert "Traceback" not in err
    assert str(named) in err, f"the file is not named: {err}"
    assert field in err, f"the field {field!r} is not named: {err}"


@pytest.mark.parametrize("argv", [
    ["validate", "experiments/pod\0kill.yaml"],
    ["validate", "e" * 5000 + ".yaml"],
    ["run", "experiments/pod\0kill.yaml"],
    ["report", "runs/x\0y"],
    ["report", "r" * 5000],
    ["compare", str(VALID_RUN), "baselines/\0"],
    ["compare", "x" * 5000, str(VALID_RUN)],
    ["baseline", "save", "runs/\0"],
    ["suite", "nightly", "--experiments-dir", "experiments\0"],
    ["suite", "nightly", "--experiments-dir", "d" * 5000],
], ids=lambda argv: f"{argv[0]}-{'nul' if any(chr(0) in a for a in argv) else 'long-name'}")
def test_a_path_with_a_nul_byte_or_a_5000_character_name_is_exit_2(argv: list[str], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(HERE.parents[1])
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: pytest.fail("platform touched"))
    monkeypatch.setattr("harness.platforms.get_platform", lambda *_a, **_k: pytest.fail("platform touched"))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "expected a file path" in err


def test_the_valid_neighbours_of_the_corpus_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The corpus fails because of its one broken field: the unbroken experiment and run are accepted."""
    assert main(["validate", str(VALID_EXPERIMENT)]) == 0
    run = shutil.copytree(VALID_RUN, tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert main(["compare", str(run), str(VALID_RUN)]) == 0


def test_a_deeply_nested_file_in_the_experiments_folder_is_named_by_the_suite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.platforms.get_platform", lambda *_a, **_k: pytest.fail("platform touched"))
    folder = tmp_path / "experiments"
    folder.mkdir()
    nested = shutil.copy(HERE / "experiments" / "deeply-nested.yaml", folder / "deep.yaml")
    assert main(["suite", "nightly", "--experiments-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(nested) in err and "tags" in err and "nested too deeply" in err
