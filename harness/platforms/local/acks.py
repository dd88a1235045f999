"""Waits until proxies have taken a pushed config, by the versions Envoy reports.

The controller (controller.py) calls `AckWaiter.wait` right after renaming files. Every file carries a
`version_info`; Envoy shows the version each xDS subscription last took as a `version_text` readout
and counts refused updates in `update_rejected` / `update_failure`. Nothing is read before the
files are written, so an apply reaches the proxies as soon as it is translated.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from harness.errors import PlatformError
from harness.mesh.translate.xds_files import WrittenFile

POLL_S = 0.002  # a route change lands in Envoy within milliseconds; poll tightly
STATS_PATH = "/stats?filter=(version_text|update_rejected|update_failure)$"
_VERSION = re.compile(r'^(\S+)\.version_text: "([^"]*)"$', re.M)
_REFUSED = re.compile(r"^(\S+)\.update_(?:rejected|failure): (\d+)$", re.M)

Refusals = dict[str, int]  # subscription stat prefix -> update_rejected + update_failure
Current = Callable[[str, Path], "str | None"]  # (proxy, file) -> the version last written there


def subscription(written: WrittenFile) -> str:
    """The stat prefix of the subscription that watches a file (RDS: any HCM's prefix before it)."""
    if written.kind == "lds":
        return "listener_manager.lds"
    if written.kind == "cds":
        return "cluster_manager.cds"
    if written.kind == "eds":
        return f"cluster.{written.name}"
    if written.kind == "sds":
        return f"sds.{written.name}"
    return f".rds.{written.name}"


def _matches(prefix: str, stat: str) -> bool:
    return stat.endswith(prefix) if prefix.startswith(".") else stat == prefix


class AckWaiter:
    """Remembers each proxy's refusal counters, so that a new refusal is told from an old one."""

    def __init__(self) -> None:
        self.refusals: dict[str, Refusals] = {}

    async def _read(self, client: httpx.AsyncClient, admin_url: str) -> tuple[dict[str, str], Refusals]:
        text = (await client.get(admin_url + STATS_PATH)).text
        refused: Refusals = {}
        for name, value in _REFUSED.findall(text):
            refused[name] = refused.get(name, 0) + int(value)
        return dict(_VERSION.findall(text)), refused

    async def wait(self, client: httpx.AsyncClient, admins: Mapping[str, str],
                   written: Mapping[str, Sequence[WrittenFile]], timeout_s: float = 5.0,
                   current: Current | None = None) -> None:
        """Every proxy must report every written file's version; a refusal is an error at once.

        A proxy whose admin does not answer is not running; it reads the files when it starts.
        `current` gives the version a file holds now: an endpoint push may rewrite a file while
        this push is being acknowledged, and then the newer version counts as taken too.
        """
        pending = {name: list(files) for name, files in written.items() if files}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while pending:
            names = list(pending)
            results = await asyncio.gather(*(self._read(client, admins[n]) for n in names),
                                           return_exceptions=True)
            for name, result in zip(names, results):
                if isinstance(result, BaseException):
                    if not isinstance(result, httpx.HTTPError):
                        raise result
                    del pending[name]
                    continue
                versions, refused = result
                before, self.refusals[name] = self.refusals.get(name, {}), refused
                now = (lambda f: current(name, f.path)) if current else (lambda f: None)
                pending[name] = [f for f in pending[name] if not _taken(f, versions, now(f))]
                bad = [sub for sub, count in refused.items() if count > before.get(sub, 0)
                       and any(_matches(subscription(f), sub) for f in pending[name])]
                if bad:
                    raise PlatformError(f"proxy {name} rejected the pushed configuration ({', '.join(bad)}); "
                                        "see its log")
                if not pending[name]:
                    del pending[name]
            if pending and loop.time() > deadline:
                late = {n: sorted(f.path.name for f in files) for n, files in sorted(pending.items())}
                raise PlatformError(f"proxies did not take the new configuration within {timeout_s} s: {late}")
            if pending:
                await asyncio.sleep(POLL_S)


def _taken(written: WrittenFile, versions: Mapping[str, str], newer: str | None = None) -> bool:
    prefix = subscription(written)
    seen = [v for stat, v in versions.items() if _matches(prefix, stat)]
    return bool(seen) and all(v in (written.version, newer) for v in seen)
