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


Counters = dict[tuple[str, str], int]  # (subscription, update_success|rejected|failure) -> count


async def update_counters(client: httpx.AsyncClient, admin_url: str) -> Counters:
    """Every xDS subscription's update counters on one proxy."""
    response = await client.get(admin_url + STATS_PATH)
    return {(name, kind): int(value) for name, kind, value in _COUNTER.findall(response.text)}


def _increase(now: Counters, before: Counters, kinds: tuple[str, ...]) -> int:
    """Growth per subscription; a subscription that disappeared (a removed cluster) counts nothing."""
    return sum(max(0, value - before.get(key, 0)) for key, value in now.items() if key[1] in kinds)


async def snapshot(client: httpx.AsyncClient, admins: Mapping[str, str]) -> dict[str, Counters]:
    names = list(admins)
    results = await asyncio.gather(*(update_counters(client, admins[n]) for n in names), return_exceptions=True)
    return {n: r for n, r in zip(names, results) if isinstance(r, dict)}


async def wait_for_acks(client: httpx.AsyncClient, admins: Mapping[str, str], before: dict[str, Counters],
                        changed: Mapping[str, int], timeout_s: float = 5.0) -> None:
    """Every proxy with `changed[name]` new files must count that many more updates; a rejection is an error."""
    pending = {n: c for n, c in changed.items() if c and n in before}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while pending:
        now = await snapshot(client, {n: admins[n] for n in pending})
        for name, counters in now.items():
            old = before[name]
            bad = [key[0] for key, value in counters.items()
                   if key[1] != "update_success" and value > old.get(key, 0)]
            if bad:
                raise PlatformError(f"proxy {name} rejected the pushed configuration ({', '.join(bad)}); "
                                    "see its log")
            if _increase(counters, old, ("update_success",)) >= pending[name]:
                del pending[name]
        if pending and asyncio.get_running_loop().time() > deadline:
            raise PlatformError(f"proxies did not take the new configuration within {timeout_s} s: "
                                f"{sorted(pending)}")
        if pending:
            await asyncio.sleep(POLL_S)
