"""The load of a run on kind with --in-cluster: Locust as Jobs in the cluster, recorded in the fault ledger.

The ledger entry (kind `load`) is written before the Jobs are applied and cleared once they are deleted;
a run killed in between leaves it, and the next run, `up` or `harness reset` deletes the Jobs
(harness.chaos.ledger's undo of `load`: the platform's stop_in_cluster_load). The Jobs' own
activeDeadlineSeconds is the cluster's backstop when nothing runs the harness again.
"""

from __future__ import annotations

from harness.chaos.ledger import LedgerEntry, ledger_for
from harness.load._in_cluster import InClusterLoadRun
from harness.load._spec import LoadSpec
from harness.platforms.base import Platform

DESCRIPTION = "Locust master and workers as Jobs in parallel-ai (--in-cluster)"


def in_cluster_load_run(spec: LoadSpec, platform: Platform) -> InClusterLoadRun:
    """An InClusterLoadRun whose Jobs are in the platform's fault ledger while they exist."""
    ledger = ledger_for(platform)
    entries: list[LedgerEntry] = []

    def record() -> None:
        if ledger is not None:
            entries.append(ledger.record("load", DESCRIPTION, {"jobs": ["locust-master", "locust-worker"]}))

    def clear() -> None:
        if ledger is not None:
            for entry in entries:
                ledger.clear(entry.id)
            entries.clear()

    return InClusterLoadRun(spec, platform, before_start=record, after_removal=clear)
