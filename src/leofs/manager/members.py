"""The member table: who is in the cluster, in which state, and whether it is alive.

States (LeoFS, reference/leofs.md 6.4): ``attached`` (registered, not in the ring yet), ``running``,
``suspend`` (admin maintenance, no traffic), ``stop`` (missed heartbeats), ``restarted`` (a detached
node that registered again; needs ``resume``), ``detached`` (leaving at the next rebalance).
Gateways are only ``running`` or ``stop``.

A storage node of the ring that comes back after a ``stop`` is ``recovering`` (a state of this
implementation, not LeoFS's): it takes writes and the other nodes replay their repair queues
toward it, but gateways and coordinators read from it only once it is ``running``, which the
manager sets when every other running (or recovering) storage node has reported, in two heartbeats
since, an empty repair queue toward it. Until then a read could find the old version there.
Nodes that are themselves stopped are not waited for (their queues drain when they come back).

States are persisted in the manager store; liveness (the time of the last heartbeat) and the ring
hashes each node reports are runtime state, kept in memory only: heartbeats arrive every second
from every node and must not turn into disk writes. Time comes from an injected monotonic clock so
that the timeout logic is testable without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import msgspec

from leofs.accounts import ManagerError, NotFound
from leofs.config import DEFAULT_HEARTBEAT_TIMEOUT
from leofs.internal.membership import RECOVERING
from leofs.internal.messages import HeartbeatRequest, NodeInfo, RegisterRequest
from leofs.manager.member_log import MemberLog
from leofs.manager.store import ManagerStore

log = logging.getLogger("leofs.manager.members")

STORAGE = "storage"
GATEWAY = "gateway"
HEARTBEAT_TIMEOUT = DEFAULT_HEARTBEAT_TIMEOUT

#: states a missing heartbeat turns into ``stop``; admin states (suspend, detached, restarted) stay
#: as the operator left them, so a flapping node cannot undo a suspend or a detach
_TIMES_OUT = ("running", "attached", RECOVERING)
#: storage nodes whose repair queues a recovering node waits for
_REPORTERS = ("running", RECOVERING)


class Members:
    """Member states with their transitions, persisted through a :class:`ManagerStore`.

    ``in_ring`` is the set of node names in the current ring (set by the cluster when the ring
    changes): a stopped node that comes back returns to ``running`` only if it is in the ring.
    ``version`` grows on every state or address change; ``log`` records every change of a member
    as views carry it (heartbeat answers send only the changes).
    """

    def __init__(self, store: ManagerStore, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, timeout: float = HEARTBEAT_TIMEOUT) -> None:
        self.store = store
        self.clock = clock
        self.wall = wall
        self.timeout = timeout
        self.version = 0
        self.log = MemberLog()
        self.in_ring: frozenset[str] = frozenset()
        self._nodes: dict[str, NodeInfo] = {n.name: n for n in store.members()}
        # After a manager restart every known node gets a full timeout to show up again.
        now = clock()
        self._seen: dict[str, float] = dict.fromkeys(self._nodes, now)
        # recovering node -> when it became so; reporter -> (its last two report times, last depths)
        self._recovering: dict[str, float] = {n: now for n, x in self._nodes.items() if x.state == RECOVERING}
        self._reports: dict[str, tuple[float, float, dict[str, int]]] = {}

    # -- queries ----------------------------------------------------------------------------------
    def get(self, name: str) -> NodeInfo | None:
        """The member called ``name``."""
        return self._nodes.get(name)

    def require(self, name: str, type_: str | None = STORAGE) -> NodeInfo:
        """The member called ``name`` (of ``type_`` unless None), or NotFound."""
        node = self._nodes.get(name)
        if node is None or (type_ is not None and node.type != type_):
            kind = f"{type_} node" if type_ else "member"
            raise NotFound("not_found", f"no {kind} {name!r}; {self.known(type_)}")
        return node

    def known(self, type_: str | None = STORAGE) -> str:
        """The names an error about an unknown node offers instead ("known storage nodes: a, b")."""
        names = [n.name for n in self.nodes(type_)]
        kind = f"{type_} nodes" if type_ else "members"
        return f"known {kind}: {', '.join(names)}" if names else f"no {kind} yet"

    def nodes(self, type_: str | None = None, states: Iterable[str] | None = None) -> list[NodeInfo]:
        """Members sorted by name, optionally of one type and in some states."""
        wanted = None if states is None else set(states)
        return [
            n for _, n in sorted(self._nodes.items())
            if (type_ is None or n.type == type_) and (wanted is None or n.state in wanted)
        ]

    def heartbeat_age(self, name: str) -> float | None:
        """Seconds since the last register/heartbeat of ``name`` (None if unknown)."""
        seen = self._seen.get(name)
        return None if seen is None else max(0.0, self.clock() - seen)

    # -- transitions ------------------------------------------------------------------------------
    def _put(self, node: NodeInfo, *, persist: bool = True) -> NodeInfo:
        old = self._nodes.get(node.name)
        self._nodes[node.name] = node
        if node != old:
            self.log.changed(node.name)
        if persist:
            self.store.save_member(node)
            self.version += 1
        elif old is None:
            self.version += 1
        return node

    def _set(self, node: NodeInfo, state: str) -> NodeInfo:
        if node.state == state:
            return node
        if state == RECOVERING:
            self._recovering[node.name] = self.clock()
            log.warning("%s is back: recovering until the repair queues toward it are empty", node.name)
        elif (since := self._recovering.pop(node.name, None)) is not None:
            log.warning("%s: %s after %.1f s of recovery", node.name, state, self.clock() - since)
        return self._put(msgspec.structs.replace(node, state=state, updated=self.wall()))

    def register(self, req: RegisterRequest) -> NodeInfo:
        """A node announces itself; idempotent on restart.

        New storage nodes are ``attached``; a known one keeps its state, except ``stop`` and
        ``running`` (-> ``recovering`` if in the ring; a stopped node outside it -> ``attached``)
        and ``detached`` (-> ``restarted``). Gateways are ``running``. A node in the ring may not
        change its address, rack or vnodes: those are part of the ring's placement and would
        silently disagree with it.
        """
        if req.type not in (STORAGE, GATEWAY):
            raise ManagerError("bad_argument", f"unknown member type {req.type!r}")
        if not req.name:
            raise ManagerError("bad_argument", "a member needs a name")
        old = self._nodes.get(req.name)
        if old is not None and old.type != req.type:
            raise ManagerError("conflict", f"{req.name!r} is already registered as a {old.type}")
        self._seen[req.name] = self.clock()
        if req.type == GATEWAY:
            state = "running"
        elif old is None:
            state = "attached"
        elif old.state in ("stop", "running"):
            # a restarted process may have missed writes even when it was back before the timeout
            state = RECOVERING if req.name in self.in_ring else "attached" if old.state == "stop" else old.state
        elif old.state == "detached":
            state = "restarted"
        else:
            state = old.state
        if (old is not None and req.type == STORAGE and req.name in self.in_ring
                and (old.address, old.rack, old.vnodes) != (req.address, req.rack, req.vnodes)):
            raise ManagerError(
                "conflict",
                f"node {req.name!r} is in the ring at {old.address} (rack {old.rack}, {old.vnodes} vnodes); "
                "it cannot re-register with another address, rack or vnodes",
            )
        node = NodeInfo(name=req.name, type=req.type, address=req.address, state=state, rack=req.rack,
                        vnodes=req.vnodes, updated=self.wall(), admin_address=req.admin_address)
        if old is not None:
            unchanged = (old.address, old.state, old.rack, old.vnodes, old.admin_address) == (
                node.address, state, node.rack, node.vnodes, node.admin_address)
            node = msgspec.structs.replace(node, ring_hash_current=old.ring_hash_current,
                                           ring_hash_previous=old.ring_hash_previous,
                                           updated=old.updated if unchanged else node.updated)
            if unchanged:
                return self._put(node, persist=False)
        if node.state == RECOVERING and (old is None or old.state != RECOVERING):
            self._recovering[node.name] = self.clock()
            log.warning("%s registered again: recovering until the repair queues toward it are empty", node.name)
        return self._put(node)

    def heartbeat(self, req: HeartbeatRequest) -> NodeInfo | None:
        """Record a heartbeat and the hashes it reports; None for an unknown node (it must register)."""
        node = self._nodes.get(req.name)
        if node is None or node.type != req.type:
            return None
        self._seen[req.name] = self.clock()
        if (node.ring_hash_current, node.ring_hash_previous, node.admin_address) != (
                req.ring_hash_current, req.ring_hash_previous, req.admin_address):
            node = self._put(msgspec.structs.replace(node, ring_hash_current=req.ring_hash_current,
                                                     ring_hash_previous=req.ring_hash_previous,
                                                     admin_address=req.admin_address), persist=False)
        if req.repair_queue is not None:
            last = self._reports.get(req.name)
            self._reports[req.name] = (last[1] if last else float("-inf"), self.clock(), dict(req.repair_queue))
        if node.state == "stop":
            back = "running" if node.type == GATEWAY else RECOVERING if node.name in self.in_ring else "attached"
            node = self._set(node, back)
        self.promote_recovered()
        return self._nodes[req.name]

    def repair_pending(self, name: str) -> dict[str, int | None]:
        """For a recovering node: per storage node it waits for, the tasks last reported toward it
        (None: no report since it came back)."""
        since = self._recovering.get(name)
        if since is None:
            return {}
        out: dict[str, int | None] = {}
        for other in self.nodes(STORAGE, _REPORTERS):
            if other.name == name:
                continue
            report = self._reports.get(other.name)
            out[other.name] = report[2].get(name, 0) if report is not None and report[0] > since else None
        return out

    def promote_recovered(self) -> list[str]:
        """Set ``running`` every recovering node toward which no repair task is left (see above)."""
        promoted = []
        for name in sorted(self._recovering):
            node = self._nodes.get(name)
            if node is None or node.state != RECOVERING:
                self._recovering.pop(name, None)
                continue
            if all(n == 0 for n in self.repair_pending(name).values()):
                self._set(node, "running")
                promoted.append(name)
        return promoted

    def check_timeouts(self) -> list[str]:
        """Mark ``stop`` every running or attached member silent for longer than the timeout."""
        now = self.clock()
        stopped = []
        for name, node in sorted(self._nodes.items()):
            if node.state in _TIMES_OUT and now - self._seen.get(name, now) > self.timeout:
                self._set(node, "stop")
                stopped.append(name)
        return stopped

    def set_state(self, name: str, state: str) -> NodeInfo:
        """Set a member's state (admin transitions; the caller checks they are allowed)."""
        return self._set(self.require(name, None), state)

    def forget(self, name: str) -> None:
        """Remove a member entirely (a stopped gateway, for instance)."""
        self.require(name, None)
        del self._nodes[name]
        self._seen.pop(name, None)
        self._recovering.pop(name, None)
        self._reports.pop(name, None)
        self.store.delete_member(name)
        self.version += 1
        self.log.removed(name)
