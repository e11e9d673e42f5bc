"""How a gateway worker process (``leofs gateway --workers N``, N > 1) keeps its routing view: it
reads the manager's cluster view (``GET /int/cluster``) every second, read-only.

Only the primary process registers and heartbeats under the gateway's name; a worker must not
appear as a second gateway, so it never calls ``/int/register`` or ``/int/heartbeat``. The rings
are decoded only when their hashes changed; the members' states are applied every time, so a
worker's breakers and routing follow node state changes within about a second, as the primary's do.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from leofs.internal.client import InternalClient
from leofs.internal.membership import ClusterState
from leofs.internal.messages import ClusterView

log = logging.getLogger("leofs.gateway.follower")

_view_decoder = msgspec.msgpack.Decoder(ClusterView)


class ClusterFollower:
    """Polls the manager's cluster view into ``state`` (start / stop, as ManagerLink)."""

    def __init__(self, client: InternalClient, manager: str, state: ClusterState, *, interval: float = 1.0) -> None:
        self.client = client
        self.manager = manager
        self.state = state
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        """One read of the view (raises when the manager cannot be reached or refuses)."""
        async with self.client.request("GET", self.manager, "/int/cluster") as response:
            if response.status != 200:
                raise RuntimeError(f"manager answered {response.status}: {(await response.text())[:200]}")
            view = _view_decoder.decode(await response.read())
        if (view.ring_hash_current, view.ring_hash_previous) == self.state.hashes:
            view = msgspec.structs.replace(view, ring_current=b"", ring_previous=b"")  # known: not decoded again
        await self.state.apply_async(view)  # new rings are decoded in a thread, off the event loop

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # manager down: keep the view and retry
                log.debug("manager %s unreachable: %s", self.manager, exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
