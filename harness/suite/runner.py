"""`harness suite TAG`: run every experiment tagged TAG in turn on one mesh, then one aggregate report."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ExitCode, HarnessError
from harness.suite import aggregate
from harness.suite.model import ExperimentResult, RunFunction, SuiteOutcome
from harness.suite.select import SuiteEntry, entries_tagged

if TYPE_CHECKING:  # a lower layer, for annotations only
    from harness.platforms.base import Platform

logger = logging.getLogger("harness.suite")
#: The tag of an experiment that exists to fail (it shows a weakness): its exit 1 counts as a pass.
FAILING_VARIANT = "failing-variant"


def default_report_dir(tag: str) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-suite-{tag}"


def run_suite(tag: str, *, experiments_dir: Path, platform_name: str, report_dir: Path | None = None,
              keep_up: bool = False, progress: bool = True, run: RunFunction | None = None,
              get_platform: Callable[[str], Platform] | None = None) -> SuiteOutcome:
    """Run every experiment tagged `tag` in file-name order and write the aggregate report.

    The mesh comes up once for the whole suite (each run is told to keep it up) and goes down at the
    end unless it was already up or `keep_up`. A failed, inconclusive or invalid experiment does not
    stop the suite; an interrupted one (exit 130, or Ctrl-C) does, and the rest are reported as not
    run. Each run is scored by harness.report, which also writes a run's reports if `harness run`
    did not. Unknown tag: ConfigError listing the tags in use. `run` and `get_platform` are for tests.
    """
    from harness.report import suite_score

    if run is None:
        from harness.run.runner import run_file as run
    if get_platform is None:
        from harness.platforms import get_platform
    entries = entries_tagged(tag, experiments_dir)
    suite_dir = (report_dir or default_report_dir(tag)).resolve()
    suite_dir.mkdir(parents=True, exist_ok=True)
    platform = get_platform(platform_name)
    was_up = platform.is_up()
    results: list[ExperimentResult] = []
    try:
        if not was_up:
            platform.up()
        for index, entry in enumerate(entries, start=1):
            run_dir = suite_dir / f"{index:02d}-{entry.name}"
            result = _with_report(_run_one(entry, run_dir, run, platform_name=platform_name, progress=progress))
            result = dataclasses.replace(result, expect_fail=FAILING_VARIANT in entry.tags)
            results.append(result)
            if result.exit_code == ExitCode.INTERRUPTED:
                results += [_not_run(e) for e in entries[index:]]
                break
    finally:
        if not was_up and not keep_up:
            platform.down()
    outcome = SuiteOutcome(tag=tag, exit_code=ExitCode.worst(r.counted_exit_code for r in results), report_dir=suite_dir,
                           results=tuple(results), score=suite_score(r.score for r in results))
    aggregate.write_all(outcome)
    return outcome


def _run_one(entry: SuiteEntry, run_dir: Path, run: RunFunction, *, platform_name: str,
             progress: bool) -> ExperimentResult:
    if entry.problem is not None:
        return ExperimentResult(entry.path, entry.title, ExitCode.INVALID, None, error=entry.problem)
    logger.info("suite: running %s", entry.path)
    started = time.monotonic()
    try:
        outcome = run(entry.path, platform_name=platform_name, report_dir=run_dir, keep_up=True,
                      progress=progress)
    except HarnessError as exc:
        return ExperimentResult(entry.path, entry.title, exc.exit_code, _existing(run_dir), error=str(exc),
                                duration_s=time.monotonic() - started)
    except KeyboardInterrupt:
        return ExperimentResult(entry.path, entry.title, ExitCode.INTERRUPTED, _existing(run_dir), error="interrupted",
                                duration_s=time.monotonic() - started)
    except Exception as exc:  # a harness bug in one experiment must not cost the others their verdicts
        logger.exception("suite: %s failed inside the harness", entry.path)
        return ExperimentResult(entry.path, entry.title, ExitCode.INVALID, _existing(run_dir),
                                error=f"{type(exc).__name__}: {exc}", duration_s=time.monotonic() - started)
    title = str((outcome.journal.get("experiment") or {}).get("title") or entry.title)
    return ExperimentResult(entry.path, title, outcome.exit_code, outcome.run_dir, dict(outcome.journal),
                            error=(outcome.journal.get("harness") or {}).get("error"),
                            duration_s=time.monotonic() - started)


def _not_run(entry: SuiteEntry) -> ExperimentResult:
    return ExperimentResult(entry.path, entry.title, ExitCode.INTERRUPTED, None, error="not run: the suite was interrupted",
                            ran=False)


def _existing(run_dir: Path) -> Path | None:
    return run_dir if run_dir.is_dir() else None


def _with_report(result: ExperimentResult) -> ExperimentResult:
    """The run as harness.report reads it, its score, and its reports (report.html, junit.xml, summary.md)
    written if `harness run` did not write them. A run directory without a journal has no record."""
    from harness.report import read_run, resilience_score, write_reports
    from harness.report.write import REPORT_HTML

    if result.run_dir is None or not (result.run_dir / "journal.json").is_file():
        return result
    try:
        record = read_run(result.run_dir)
    except HarnessError as exc:
        logger.warning("suite: cannot read the run in %s: %s", result.run_dir, exc)
        return result
    if record.exit_code != result.exit_code:  # the run raised after its last journal write
        record = dataclasses.replace(record, exit_code=result.exit_code, reason=result.error or record.reason)
    if not (result.run_dir / REPORT_HTML).is_file():
        try:
            write_reports(result.run_dir)
        except Exception as exc:  # the run's own report is extra: the suite's report must still be written
            logger.warning("suite: no report for %s: %s: %s", result.run_dir, type(exc).__name__, exc)
    return dataclasses.replace(result, record=record, score=resilience_score(record))
