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
        #: the manager's members version these nodes are at (sent with every heartbeat, so that
        #: the answer carries only the changes since)
        self.members_epoch = ""
        self.members_version = 0
        #: called with the name of every node the manager reports back (running or recovering again
        #: after another state): the breakers forget its failures (leofs.internal.health)
        self.on_back: list[Callable[[str], None]] = []
        self._ring_bytes: tuple[bytes, bytes] = (b"", b"")
        self._installing = asyncio.Lock()

    def apply(self, view: ClusterView, rings: RingPair | None = None) -> None:
        """Install a view; rings only when it carries them (``rings``: already decoded from it)."""
        self.state = view.state
        self.consistency = view.consistency
        self._apply_members(view)
        if view.ring_current:
            pair = (view.ring_current, view.ring_previous)
            if rings is None and pair != self._ring_bytes:
                rings = decode_rings(view)
            if rings is not None:
                self.rings = rings
                self._ring_bytes = pair
        self.changed.set()
        self.changed = asyncio.Event()

    async def apply_async(self, view: ClusterView) -> None:
        """:meth:`apply`, with the rings decoded in a thread: at 1,000 nodes a ring takes about a
        second to decode, which would stall every request on this event loop."""
        async with self._installing:  # views are installed in the order they arrived
            rings = None
            if view.ring_current and (view.ring_current, view.ring_previous) != self._ring_bytes:
                rings = await asyncio.to_thread(decode_rings, view)
            self.apply(view, rings)

    def _apply_members(self, view: ClusterView) -> None:
        same_epoch = bool(view.members_epoch) and view.members_epoch == self.members_epoch
        if view.delta:
            # changes since ``members_since``: right on top of any state at least that recent
            if not same_epoch or not view.members_since <= self.members_version < view.members_version:
                return
            nodes = dict(self.nodes)
            for name in view.removed:
                nodes.pop(name, None)
            nodes.update((n.name, n) for n in view.nodes)
        elif same_epoch and view.members_version < self.members_version:
            return  # an older whole list (a push or pull that crossed a newer heartbeat answer)
        else:
            nodes = {n.name: n for n in view.nodes}
        old, self.nodes = self.nodes, nodes
        self.members_epoch, self.members_version = view.members_epoch, view.members_version
        for node in view.nodes:
            was = old.get(node.name)
            if was is not None and node.state in _SERVING and was.state not in _SERVING:
                for callback in self.on_back:
                    callback(node.name)

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


def decode_rings(view: ClusterView) -> RingPair:
    """The view's current and previous ring (decoded once when they are the same bytes)."""
    current = ring_from_bytes(view.ring_current)
    if not view.ring_previous or view.ring_previous == view.ring_current:
        return RingPair(current)
    return RingPair(current, ring_from_bytes(view.ring_previous))


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
        await self.state.apply_async(view)
        if self.state.rings is None and view.ring_hash_current:
            await self.state.apply_async(await self._call("GET", "/int/cluster"))

    async def beat(self) -> None:
        """One heartbeat; pulls the full view when the rings differ."""
        current, previous = self.state.hashes
        depths = await self.repair_queue() if self.repair_queue is not None else None
        beat = HeartbeatRequest(self.request.type, self.request.name, current, previous,
                                admin_address=self.request.admin_address, repair_queue=depths,
                                members_epoch=self.state.members_epoch,
                                members_version=self.state.members_version)  # fmt: skip
        view = await self._call("POST", "/int/heartbeat", encoder.encode(beat))
        await self.state.apply_async(view)
        if (view.ring_hash_current, view.ring_hash_previous) != self.state.hashes:
            await self.state.apply_async(await self._call("GET", "/int/cluster"))

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
