"""Current and previous ring, as every node keeps them (LeoFS ``leo_ring_cur`` / ``leo_ring_prv``)."""

from __future__ import annotations

from leofs.ring.lookup import Ring
from leofs.ring.members import Member


class RingPair:
    """The current ring and the one before it (immutable).

    Writes go to the current ring. During a rebalance (the two hashes differ) reads try the current
    ring's nodes first, then the previous ring's nodes that are not already listed. A cluster's first
    ring is its own previous ring, as in LeoFS.
    """

    __slots__ = ("_current", "_previous")

    def __init__(self, current: Ring, previous: Ring | None = None) -> None:
        """Pair ``current`` with ``previous`` (defaults to ``current``: no rebalance in progress)."""
        self._current = current
        self._previous = current if previous is None else previous

    @property
    def current(self) -> Ring:
        """The ring that writes use."""
        return self._current

    @property
    def previous(self) -> Ring:
        """The ring before the last rebalance (the current ring if there was none)."""
        return self._previous

    def __repr__(self) -> str:
        return f"RingPair(current={self._current.hash}, previous={self._previous.hash})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RingPair):
            return NotImplemented
        return self._current == other._current and self._previous == other._previous

    def __hash__(self) -> int:
        return hash((self._current.hash, self._previous.hash))

    def advance(self, ring: Ring) -> RingPair:
        """The pair after installing ``ring``: it becomes current and the current ring previous.

        Installing a ring with the current hash (e.g. the same placement with updated member
        states) replaces the current ring and keeps the previous one.
        """
        if ring.hash == self._current.hash:
            return RingPair(ring, self._previous)
        return RingPair(ring, self._current)

    def settle(self) -> RingPair:
        """The pair once a rebalance has moved all data: the previous ring becomes the current one."""
        return RingPair(self._current, self._current)

    @property
    def hashes(self) -> tuple[str, str]:
        """(current hash, previous hash)."""
        return self._current.hash, self._previous.hash

    @property
    def rebalancing(self) -> bool:
        """True while the previous ring's placement differs from the current one's."""
        return self._previous.hash != self._current.hash

    def write_nodes(self, key: bytes) -> list[Member]:
        """Nodes that take a write of ``key``: the current ring's redundancy list."""
        return self._current.redundancy(key)

    def read_nodes(self, key: bytes) -> list[Member]:
        """Nodes to try for a read of ``key``: current redundancy list, then the previous ring's extras."""
        nodes = self._current.redundancy(key)
        if self._previous.hash == self._current.hash:
            return nodes
        names = {m.name for m in nodes}
        nodes.extend(m for m in self._previous.redundancy(key) if m.name not in names)
        return nodes
