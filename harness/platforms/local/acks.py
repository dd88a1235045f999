"""Waits until proxies have taken a pushed config, by their own xDS update counters."""

from __future__ import annotations

import asyncio
import re
from typing import Mapping

import httpx

from harness.errors import PlatformError

_COUNTER = re.compile(r"^(\S+)\.(update_success|update_rejected|update_failure): (\d+)$", re.M)
POLL_S = 0.002  # a route change lands in Envoy within milliseconds; poll tightly
STATS_PATH = "/stats?filter=update_(success|rejected|failure)$"


async def update_counters(client: httpx.AsyncClient, admin_url: str) -> dict[str, int]:
    """success, rejected and failure summed over every xDS subscription of one proxy."""
    response = await client.get(admin_url + STATS_PATH)
    totals = {"update_success": 0, "update_rejected": 0, "update_failure": 0}
    for _, kind, value in _COUNTER.findall(response.text):
        totals[kind] += int(value)
    return totals


async def snapshot(client: httpx.AsyncClient, admins: Mapping[str, str]) -> dict[str, dict[str, int]]:
    names = list(admins)
    results = await asyncio.gather(*(update_counters(client, admins[n]) for n in names), return_exceptions=True)
    return {n: r for n, r in zip(names, results) if isinstance(r, dict)}


async def wait_for_acks(client: httpx.AsyncClient, admins: Mapping[str, str], before: dict[str, dict[str, int]],
                        changed: Mapping[str, int], timeout_s: float = 5.0) -> None:
    """Every proxy with `changed[name]` new files must count that many more updates; a rejection is an error."""
    pending = {n: c for n, c in changed.items() if c and n in before}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending:
        now = await snapshot(client, {n: admins[n] for n in pending})
        for name, counters in now.items():
            old = before[name]
            bad = {k: counters[k] - old[k] for k in ("update_rejected", "update_failure") if counters[k] > old[k]}
            if bad:
                raise PlatformError(f"proxy {name} rejected the pushed configuration ({bad}); see its log")
            seen = sum(counters[k] - old[k] for k in counters)
            if seen >= pending[name]:
                del pending[name]
        if pending and asyncio.get_running_loop().time() > deadline:
            raise PlatformError(f"proxies did not take the new configuration within {timeout_s} s: "
                                f"{sorted(pending)}")
        if pending:
            await asyncio.sleep(POLL_S)
