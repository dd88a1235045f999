"""A suite's exit code: the worst of its experiments' exit codes, worst first 130 > 2 > 3 > 1 > 0.

    130 interrupted   the suite stopped: what was left did not run
    2   invalid       an experiment file or the harness itself failed: nothing was judged
    3   inconclusive  Prometheus could not give a verdict
    1   failed        an SLO breached or the steady-state hypothesis deviated
    0   passed
An interruption ranks above everything because the suite did not finish; an invalid experiment ranks
above a failure because a broken nightly would otherwise hide behind a known failure.
"""

from __future__ import annotations

from collections.abc import Iterable

PASSED, FAILED, INVALID, INCONCLUSIVE, INTERRUPTED = 0, 1, 2, 3, 130
SEVERITY = (INTERRUPTED, INVALID, INCONCLUSIVE, FAILED, PASSED)  # worst first
WORDS = {PASSED: "PASS", FAILED: "FAIL", INVALID: "ERROR", INCONCLUSIVE: "INCONCLUSIVE", INTERRUPTED: "INTERRUPTED"}


def rank(code: int) -> int:
    """Higher is worse; a code outside the documented ones counts as invalid."""
    return len(SEVERITY) - SEVERITY.index(code if code in SEVERITY else INVALID)


def worst_exit_code(codes: Iterable[int]) -> int:
    """The worst code by SEVERITY; 0 for no codes."""
    worst = PASSED
    for code in codes:
        code = code if code in SEVERITY else INVALID
        if rank(code) > rank(worst):
            worst = code
    return worst


def word(code: int) -> str:
    return WORDS.get(code, f"EXIT {code}")
