"""The cluster as the manager sees it: consistency levels, the current and previous ring, admin transitions.

Pure logic over :class:`~leofs.manager.members.Members` and the store; no HTTP here (the routes are in
``state_api.py`` and the admin commands in ``cluster_admin.py``).
"""

from __future__ import annotations

import logging

from leofs.accounts import ManagerError
from leofs.internal.messages import ClusterView, Consistency, NodeInfo
from leofs.manager.members import STORAGE, Members
from leofs.manager.store import ManagerStore
from leofs.ring import Member, Ring, RingPair, build_ring, ring_from_bytes

log = logging.getLogger("leofs.manager.cluster")

MAX_REPLICAS = 8


def validate_levels(levels: Consistency) -> None:
    """Refuse levels outside 1 <= W, R, D <= N <= 8."""
    if not 1 <= levels.n <= MAX_REPLICAS:
        raise ManagerError("bad_argument", f"N must be between 1 and {MAX_REPLICAS}, got {levels.n}")
    for name, value in (("W", levels.w), ("R", levels.r), ("D", levels.d)):
        if not 1 <= value <= levels.n:
            raise ManagerError("bad_argument", f"{name} must be between 1 and N={levels.n}, got {value}")


class Cluster:
    """Consistency, rings and member transitions of one manager."""

    def __init__(self, store: ManagerStore, members: Members, levels: Consistency,
                 rack_aware_replicas: int | None = None) -> None:
        """Load the persisted state. ``levels`` (the command-line options) apply until ``adm start``;
        after it N is fixed and W/R/D change only through ``update-consistency-level``.
        ``rack_aware_replicas`` None means: N when any node of the first ring has a rack, else 0.
        """
        self.store = store
        self.members = members
        validate_levels(levels)
        rings = store.rings()
        self.rings: RingPair | None = None
        if rings is not None:
            try:
                self.rings = RingPair(ring_from_bytes(rings[0]), ring_from_bytes(rings[1]))
            except ValueError as exc:
                # e.g. a vnode ring (format 1) from before the partition ring: its placement cannot be
                # converted without moving every object, so say so rather than route differently
                raise ManagerError("bad_state", f"the stored RING cannot be used: {exc}") from exc
        saved = store.consistency()
        if saved is None or (self.rings is None and saved != levels):
            store.set_consistency(levels)
            saved = levels
        elif saved != levels:
            log.info("keeping the persisted consistency levels %s (options asked for %s)", saved, levels)
        self.levels = saved
        self.rack_aware_option = rack_aware_replicas
        self._update_in_ring()

    def _update_in_ring(self) -> None:
        names: set[str] = set()
        if self.rings is not None:
            names = {m.name for m in self.rings.current.members} | {m.name for m in self.rings.previous.members}
        self.members.in_ring = frozenset(names)

    @property
    def started(self) -> bool:
        """True once ``adm start`` has built the first ring."""
        return self.rings is not None

    @property
    def hashes(self) -> tuple[str, str]:
        """(current, previous) ring hash, empty strings before start."""
        return self.rings.hashes if self.rings is not None else ("", "")

    # -- the view nodes route with ----------------------------------------------------------------
    def view(self, *, with_rings: bool = True, since: tuple[str, int] | None = None) -> ClusterView:
        """What a node needs to route: states of all members, levels and (optionally) both rings.

        ``since`` (the caller's members epoch and version): only the members changed since, when
        the member log can tell; else (and without it) every member.
        """
        current, previous = self.hashes
        ring_cur = ring_prev = b""
        if with_rings and self.rings is not None:
            ring_cur, ring_prev = self.rings.current.to_bytes(), self.rings.previous.to_bytes()
        log = self.members.log
        changes = log.since(*since) if since is not None else None
        if changes is None:
            nodes, removed = self.members.nodes(), []
        else:
            nodes = [n for n in map(self.members.get, changes[0]) if n is not None]
            removed = changes[1]
        return ClusterView(
            state="running" if self.started else "pending",
            consistency=self.levels,
            nodes=nodes,
            ring_hash_current=current,
            ring_hash_previous=previous,
            ring_current=ring_cur,
            ring_previous=ring_prev,
            members_epoch=log.epoch,
            members_version=log.version,
            delta=changes is not None,
            members_since=since[1] if since is not None and changes is not None else 0,
            removed=removed,
        )

    # -- admin transitions --------------------------------------------------------------------------
    def disagreeing(self) -> list[NodeInfo]:
        """Running storage nodes whose reported current ring hash is not the manager's (LeoFS #1152)."""
        current = self.hashes[0]
        return [n for n in self.members.nodes(STORAGE, ("running",)) if n.ring_hash_current != current]

    def _require_agreement(self, what: str) -> None:
        bad = self.disagreeing()
        if bad:
            detail = ", ".join(f"{n.name}={n.ring_hash_current or '-'}" for n in bad)
            raise ManagerError(
                "ring_inconsistent",
                f"refusing {what}: nodes report another ring hash than the manager's "
                f"{self.hashes[0] or '(none)'}: {detail}",
            )

    def start(self) -> Ring:
        """Build the first ring from the attached storage nodes and set them running."""
        if self.started:
            raise ManagerError("already_started", "the cluster is already started")
        self._require_agreement("start")
        attached = self.members.nodes(STORAGE, ("attached",))
        n = self.levels.n
        if len(attached) < n:
            raise ManagerError(
                "not_enough_nodes", f"need at least N={n} attached storage nodes, have {len(attached)}")
        k = self.rack_aware_option
        if k is None:
            k = n if any(node.rack for node in attached) else 0
        ring = build_ring([Member(x.name, x.address, rack=x.rack, vnodes=x.vnodes) for x in attached],
                          replicas=n, rack_aware_replicas=k)
        # The first ring is its own previous ring (LeoFS): persist before anyone can see it.
        self.store.save_rings(ring.to_bytes(), ring.to_bytes())
        self.rings = RingPair(ring)
        self._update_in_ring()
        for node in attached:
            self.members.set_state(node.name, "running")
        log.info("cluster started: ring %s with %d nodes, N=%d", ring.hash, len(ring), n)
        return ring

    def suspend(self, name: str) -> NodeInfo:
        """Take a running storage node out of service (it stays in the ring; traffic skips it)."""
        node = self.members.require(name)
        if node.state != "running":
            raise ManagerError("bad_state", f"node {name!r} is {node.state}; only a running node can be suspended")
        return self.members.set_state(name, "suspend")

    def resume(self, name: str) -> NodeInfo:
        """suspend, restarted or detached -> running (attached if the node is not in the ring)."""
        node = self.members.require(name)
        if node.state not in ("suspend", "restarted", "detached", "recovering"):
            raise ManagerError("bad_state", f"node {name!r} is {node.state}; resume applies to suspend, "
                                            "restarted, detached or recovering nodes")
        return self.members.set_state(name, "running" if name in self.members.in_ring else "attached")

    def detach(self, name: str) -> NodeInfo:
        """Mark a storage node to leave the ring at the next rebalance."""
        node = self.members.require(name)
        if node.state not in ("running", "stop", "suspend", "attached", "restarted", "recovering"):
            raise ManagerError("bad_state", f"node {name!r} is {node.state}; it cannot be detached")
        self._require_agreement("detach")
        self._require_no_rebalance("detach")
        if node.state != "attached" and self.rings is not None:
            staying = [m for m in self.rings.current.members
                       if m.name != name and (x := self.members.get(m.name)) is not None and x.state != "detached"]
            if len(staying) < self.levels.n:
                raise ManagerError(
                    "not_enough_nodes",
                    f"detaching {name!r} would leave {len(staying)} nodes in the ring, fewer than N={self.levels.n}")
        return self.members.set_state(name, "detached")

    def _require_no_rebalance(self, what: str) -> None:
        if self.rings is not None and self.rings.rebalancing:
            raise ManagerError("busy", f"refusing {what}: a rebalance is in progress (leofs adm rebalance-status)")

    def rebalance(self) -> RingPair:
        """Build the next ring: the current members minus the ``detached`` ones plus the ``attached``
        ones, placed from the current ring (minimal movement). It becomes current with the old ring
        as previous (persisted together); joining nodes turn ``running``. The nodes then move the
        data and :meth:`settle` ends the rebalance."""
        if self.rings is None:
            raise ManagerError("not_started", "the cluster is not started (leofs adm start)")
        self._require_no_rebalance("rebalance")
        self._require_agreement("rebalance")
        current = self.rings.current
        leaving = {n.name for n in self.members.nodes(STORAGE, ("detached",)) if n.name in current}
        joining = [n for n in self.members.nodes(STORAGE, ("attached",)) if n.name not in current]
        if not leaving and not joining:
            raise ManagerError("nothing_to_do", "no attached or detached storage node: nothing to rebalance")
        staying = [Member(m.name, m.address, rack=m.rack, vnodes=m.vnodes) for m in current.members
                   if m.name not in leaving]  # fmt: skip
        staying += [Member(x.name, x.address, rack=x.rack, vnodes=x.vnodes) for x in joining]
        if len(staying) < self.levels.n:
            raise ManagerError("not_enough_nodes",
                               f"the new ring would have {len(staying)} nodes, fewer than N={self.levels.n}")
        ring = build_ring(staying, replicas=current.replicas, rack_aware_replicas=current.rack_aware_replicas,
                          previous=current)  # fmt: skip
        self.store.save_rings(ring.to_bytes(), current.to_bytes())
        self.rings = RingPair(ring, current)
        self._update_in_ring()
        for node in joining:
            self.members.set_state(node.name, "running")
        log.info("rebalance: ring %s -> %s (joining %s, leaving %s)", current.hash, ring.hash,
                 [n.name for n in joining], sorted(leaving))  # fmt: skip
        return self.rings

    def settle(self) -> RingPair:
        """End a rebalance (every node has moved its data): the previous ring becomes the current one.
        Nodes that left stay ``detached``, outside the ring."""
        if self.rings is None or not self.rings.rebalancing:
            raise ManagerError("bad_state", "no rebalance in progress")
        pair = self.rings.settle()
        self.store.save_rings(pair.current.to_bytes(), pair.current.to_bytes())
        self.rings = pair
        self._update_in_ring()
        log.info("rebalance to ring %s settled", pair.current.hash)
        return pair

    def rollback(self, name: str) -> NodeInfo:
        """Undo an attach or a detach that no rebalance has applied yet: a detached node of the
        current ring is ``running`` again (the heartbeat check stops it if it is gone); an attached
        node outside the ring becomes ``detached``, so that no rebalance takes it in."""
        node = self.members.require(name)
        self._require_agreement("rollback")
        in_current = self.rings is not None and name in self.rings.current
        if node.state == "detached" and in_current:
            self._require_no_rebalance("rollback")
            return self.members.set_state(name, "running")
        if node.state == "attached" and not in_current:
            return self.members.set_state(name, "detached")
        raise ManagerError("bad_state", f"node {name!r} is {node.state}"
                           f"{' in' if in_current else ' outside'} the ring: rollback undoes an attach or a "
                           "detach that has not been rebalanced")  # fmt: skip

    def update_levels(self, w: int, r: int, d: int) -> Consistency:
        """Change W/R/D live (N is fixed)."""
        levels = Consistency(n=self.levels.n, w=w, r=r, d=d)
        validate_levels(levels)
        self.store.set_consistency(levels)
        self.levels = levels
        return levels
