"""A storage node's view of the cluster.

:class:`NodeCluster` is the shared :class:`~leofs.internal.membership.ClusterState` (current and
previous ring, node states, N/W/R/D; kept current by :class:`~leofs.internal.membership.ManagerLink`
and by the manager's ``POST /int/ring`` pushes) plus what a storage node needs on top:

- the view is saved in the data directory, so a restarted node routes with its cached ring while
  the manager is down;
- the node itself always counts as running (it is serving the request);
- addresses by node name, for repair tasks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from leofs.internal.membership import RECOVERING, ClusterState
from leofs.internal.messages import ClusterView, encoder, view_decoder
from leofs.ring import Member, RingPair
from leofs.ring.members import RUNNING

log = logging.getLogger("leofs.node.membership")



class NodeCluster(ClusterState):
    """The cluster as this node knows it, persisted in ``path`` when given."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        super().__init__()
        self.name = name
        self.path = path
        self.view: ClusterView | None = None  # the last view, with the rings we hold
        if path is not None and path.exists():
            try:
                self.apply(view_decoder.decode(path.read_bytes()))
            except (msgspec.DecodeError, ValueError) as exc:
                log.warning("ignoring unreadable cached cluster view %s: %s", path, exc)

    def apply(self, view: ClusterView, rings: RingPair | None = None) -> None:
        """Install a view. One without ring bytes (a heartbeat answer) updates states and levels and
        keeps our rings (ManagerLink pulls the ring when the manager's hashes differ); one with only
        the members changed (a heartbeat answer's delta) updates those."""
        super().apply(view, rings)
        old = self.view
        if (old is not None and view.delta and not view.nodes and not view.removed and not view.ring_current
                and (view.state, view.consistency) == (old.state, old.consistency)):
            return  # the usual heartbeat answer: nothing changed
        if view.delta or view.members_epoch != self.members_epoch or view.members_version != self.members_version:
            # the whole member list as installed (a delta, or an older list that was not installed)
            view = msgspec.structs.replace(
                view, nodes=list(self.nodes.values()), delta=False, removed=[], members_since=0,
                members_epoch=self.members_epoch, members_version=self.members_version)  # fmt: skip
        if not view.ring_current:
            current, previous = self.hashes
            view = msgspec.structs.replace(
                view, ring_current=old.ring_current if old else b"", ring_previous=old.ring_previous if old else b"",
                ring_hash_current=current, ring_hash_previous=previous)  # fmt: skip
        self.view = view
        if self.path is not None and _essence(old) != _essence(view):
            self._save(view)

    def _save(self, view: ClusterView) -> None:
        assert self.path is not None
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(encoder.encode(view))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def state_of(self, name: str) -> str:
        """A node's state: the manager's node list first, else the ring's copy."""
        node = self.nodes.get(name)
        if node is not None:
            return node.state
        member = self._member(name)
        return member.state if member is not None else "unknown"

    def running(self, member: Member | str) -> bool:
        name = member if isinstance(member, str) else member.name
        return name == self.name or self.state_of(name) == RUNNING

    def writable(self, member: Member | str) -> bool:
        """Running, or recovering (it takes writes and repairs, and serves no reads yet)."""
        name = member if isinstance(member, str) else member.name
        return name == self.name or self.state_of(name) in (RUNNING, RECOVERING)

    def address_of(self, name: str) -> str | None:
        node = self.nodes.get(name)
        if node is not None:
            return node.address
        member = self._member(name)
        return member.address if member is not None else None

    def _member(self, name: str) -> Member | None:
        if self.rings is None:
            return None
        return self.rings.current.member(name) or self.rings.previous.member(name)


def _essence(view: ClusterView | None) -> object:
    """What routing depends on: heartbeat answers differ every second in timestamps only."""
    if view is None:
        return None
    return (view.state, view.consistency, view.ring_hash_current, view.ring_hash_previous,
            sorted((n.name, n.type, n.address, n.state) for n in view.nodes))  # fmt: skip
