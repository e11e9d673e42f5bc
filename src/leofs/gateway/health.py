"""``GET /_leofs_adm/ping``: 200 while at least one storage node answers, 503 otherwise.

A load balancer polls this often and anyone may call it, so one probe serves every ping for a
second (one probe in flight at a time): pings never multiply into calls to the storage nodes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from leofs.internal.client import InternalClient
from leofs.internal.membership import ClusterState

log = logging.getLogger("leofs.gateway.health")

#: seconds one probe's answer serves
FRESH_FOR = 1.0
#: seconds a storage node has to answer a probe
PROBE_TIMEOUT = 2.0

Probe = Callable[[], Awaitable[bool]]


class Health:
    """Whether the gateway can reach storage, probed at most once a second."""

    def __init__(self, probe: Probe | None = None) -> None:
        self.probe = probe
        self._answer: tuple[float, bool] | None = None
        self._running: asyncio.Future[bool] | None = None

    async def ok(self) -> bool:
        """True when a storage node answered (always, without a probe: the embedded server's
        store is in the process itself)."""
        if self.probe is None:
            return True
        now = time.monotonic()
        if self._answer is not None and now - self._answer[0] < FRESH_FOR:
            return self._answer[1]
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._running)

    async def _probe(self) -> bool:
        assert self.probe is not None
        try:
            result = await self.probe()
        except Exception:
            log.exception("health probe failed")
            result = False
        self._answer = (time.monotonic(), result)
        self._running = None
        return result


def cluster_probe(client: InternalClient, state: ClusterState) -> Probe:
    """A probe asking every storage node the manager reports running for its health; true as
    soon as one answers."""

    async def one(address: str) -> bool:
        try:
            async with client.request("GET", address, "/int/health",
                                      timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as resp:
                await resp.read()
                return bool(resp.status == 200)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("storage node %s does not answer: %s", address, exc)
            return False

    async def probe() -> bool:
        addresses = [n.address for n in state.storage_nodes() if n.state == "running"]
        pending = {asyncio.ensure_future(one(a)) for a in addresses}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result() for task in done):
                    return True
            return False
        finally:
            for task in pending:
                task.cancel()

    return probe
