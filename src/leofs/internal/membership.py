"""A cluster member's link to the manager: register, heartbeat, and keep the ring current.

Gateways (and storage nodes) hold a :class:`ClusterState`: the current and previous ring, every
node's state, and the consistency levels. It keeps working on the last known state while the
manager is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from leofs.internal.client import InternalClient
from leofs.internal.messages import (
    MSGPACK,
    ClusterView,
    Consistency,
    HeartbeatRequest,
    NodeInfo,
    RegisterRequest,
    encoder,
    view_decoder,
)
from leofs.ring import RingPair, ring_from_bytes
from leofs.ring.members import Member

log = logging.getLogger("leofs.membership")

#: a storage node back after a ``stop`` whose repair queues are still draining: it takes writes and
#: repairs, but serves no reads (it may miss writes), until the manager sets it ``running``
RECOVERING = "recovering"
_SERVING = ("running", RECOVERING)


class ClusterState:
    """The last cluster view this process got from the manager."""

    def __init__(self) -> None:
        self.rings: RingPair | None = None
        self.nodes: dict[str, NodeInfo] = {}
        self.consistency = Consistency()
        self.state = "unknown"
        self.changed = asyncio.Event()
        #: called with the name of every node the manager reports back (running or recovering again
        #: after another state): the breakers forget its failures (leofs.internal.health)
        self.on_back: list[Callable[[str], None]] = []

    def apply(self, view: ClusterView) -> None:
        """Install a view; rings only when it carries them."""
        self.state = view.state
        self.consistency = view.consistency
        old = self.nodes
        self.nodes = {n.name: n for n in view.nodes}
        for name, node in self.nodes.items():
            was = old.get(name)
            if was is not None and node.state in _SERVING and was.state not in _SERVING:
                for callback in self.on_back:
                    callback(name)
        if view.ring_current:
            current = ring_from_bytes(view.ring_current)
            previous = ring_from_bytes(view.ring_previous) if view.ring_previous else None
            self.rings = RingPair(current, previous)
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def hashes(self) -> tuple[str, str]:
        return self.rings.hashes if self.rings is not None else ("", "")

    def running(self, member: Member) -> bool:
        node = self.nodes.get(member.name)
        return node is not None and node.state == "running"

    def address(self, member: Member) -> str:
        node = self.nodes.get(member.name)
        return node.address if node is not None else member.address

    def storage_nodes(self) -> list[NodeInfo]:
        return [n for n in self.nodes.values() if n.type == "storage"]


class ManagerLink:
    """Registers with the manager and heartbeats; pulls the ring when the hashes differ."""

    def __init__(self, client: InternalClient, manager: str, request: RegisterRequest, state: ClusterState,
                 *, interval: float = 1.0, repair_queue: Callable[[], Awaitable[dict[str, int]]] | None = None) -> None:
        self.client = client
        self.repair_queue = repair_queue  # a storage node's queue depth per target, sent with every beat
        self.manager = manager
        self.request = request
        self.state = state
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def _call(self, method: str, path: str, body: bytes | None = None) -> ClusterView:
        headers = {"Content-Type": MSGPACK}
        async with self.client.request(method, self.manager, path, data=body, headers=headers) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                                  message=await response.text())
            return view_decoder.decode(await response.read())

    async def register(self) -> None:
        """Register once (raises when the manager cannot be reached)."""
        view = await self._call("POST", "/int/register", encoder.encode(self.request))
        self.state.apply(view)
        if self.state.rings is None and view.ring_hash_current:
            self.state.apply(await self._call("GET", "/int/cluster"))

    async def beat(self) -> None:
        """One heartbeat; pulls the full view when the rings differ."""
        current, previous = self.state.hashes
        depths = await self.repair_queue() if self.repair_queue is not None else None
        beat = HeartbeatRequest(self.request.type, self.request.name, current, previous,
                                admin_address=self.request.admin_address, repair_queue=depths)
        view = await self._call("POST", "/int/heartbeat", encoder.encode(beat))
        self.state.apply(view)
        if (view.ring_hash_current, view.ring_hash_previous) != self.state.hashes:
            self.state.apply(await self._call("GET", "/int/cluster"))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        registered = False
        while True:
            try:
                if not registered:
                    await self.register()
                    registered = True
                else:
                    await self.beat()
            except asyncio.CancelledError:
                raise
            except aiohttp.ClientResponseError as exc:
                registered = registered and exc.status != 404  # the manager forgot us: register again
                log.debug("manager %s answered %s", self.manager, exc.status)
            except Exception as exc:  # manager down: keep the cached view and retry
                log.debug("manager %s unreachable: %s", self.manager, exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
