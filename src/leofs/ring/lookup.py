"""The runtime half of the RING: an immutable, precomputed routing table.

A :class:`Ring` is built by :func:`leofs.ring.builder.build_ring` (or decoded with
:func:`leofs.ring.builder.ring_from_bytes`). It holds the sorted vnode points and, for every point, the redundancy list
of the keys that land on it, so a lookup is one MD5, one bisect and one list index.

Addresses live on a 2^128 ring. A key's address is MD5(key) read as a big-endian integer; the key
belongs to the first vnode point ``>= address`` (wrapping past the top to the first point).
"""

from __future__ import annotations

import hashlib
import zlib
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from leofs.ring.members import Member

RING_SIZE: Final = 1 << 128
"""Number of addresses on the ring (MD5 is 128 bits)."""

FORMAT_VERSION: Final = 1
"""Version of the serialized ring layout (part of the canonical bytes and so of the hash)."""


def key_address(key: bytes) -> int:
    """Return the ring address of ``key``: MD5(key) as an unsigned big-endian int in [0, 2^128)."""
    return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")


class _Snapshot(msgspec.Struct, array_like=True, frozen=True):
    """Wire form of a ring (see :meth:`Ring.to_bytes`)."""

    version: int
    replicas: int
    rack_aware_replicas: int
    members: list[Member]
    hash: str


class _Placement(msgspec.Struct, array_like=True, frozen=True):
    """What the ring hash covers: everything that decides placement and routing, not node states."""

    version: int
    replicas: int
    rack_aware_replicas: int
    members: list[tuple[str, str, str | None, int]]


snapshot_decoder: Final = msgspec.msgpack.Decoder(_Snapshot)
_encoder: Final = msgspec.msgpack.Encoder()


def placement_hash(members: Sequence[Member], replicas: int, rack_aware_replicas: int) -> str:
    """CRC32 (zlib) of the canonical placement record, as 8 lowercase hex chars.

    ``members`` must already be in canonical order (sorted by name). Node states are deliberately
    left out: a node going down does not move any key, so it must not change the ring hash.
    """
    record = _Placement(
        FORMAT_VERSION,
        replicas,
        rack_aware_replicas,
        [(m.name, m.address, m.rack, m.vnodes) for m in members],
    )
    return f"{zlib.crc32(_encoder.encode(record)) & 0xFFFFFFFF:08x}"


class Ring:
    """An immutable consistent-hash routing table (LeoFS RING).

    Attributes are read-only. Use :func:`leofs.ring.build_ring` to make one; the constructor is
    internal and trusts its arguments.
    """

    __slots__ = (
        "_by_name",
        "_bytes",
        "_hash",
        "_lists",
        "_members",
        "_owners",
        "_points",
        "_rack_aware",
        "_replicas",
    )

    _members: tuple[Member, ...]
    _replicas: int
    _rack_aware: int
    _points: list[int]
    _owners: list[int]
    _lists: list[tuple[Member, ...]]
    _hash: str
    _bytes: bytes | None
    _by_name: dict[str, Member]

    def __init__(
        self,
        *,
        members: tuple[Member, ...],
        replicas: int,
        rack_aware_replicas: int,
        points: list[int],
        owners: list[int],
        lists: list[tuple[Member, ...]],
    ) -> None:
        """Internal: use :func:`leofs.ring.build_ring`. ``lists`` has one extra (wrap-around) entry."""
        self._members = members
        self._replicas = replicas
        self._rack_aware = rack_aware_replicas
        self._points = points
        self._owners = owners
        self._lists = lists
        self._hash = placement_hash(members, replicas, rack_aware_replicas)
        self._bytes = None
        self._by_name = {m.name: m for m in members}

    # ------------------------------------------------------------------ properties
    @property
    def replicas(self) -> int:
        """N: the number of distinct nodes in each redundancy list (fewer if the ring has fewer)."""
        return self._replicas

    @property
    def rack_aware_replicas(self) -> int:
        """How many of the first picks must come from distinct racks (0 = rack-blind)."""
        return self._rack_aware

    @property
    def members(self) -> tuple[Member, ...]:
        """The ring's members, sorted by name."""
        return self._members

    @property
    def hash(self) -> str:
        """Ring hash: CRC32 of the canonical placement record, 8 lowercase hex chars.

        Covers the format version, N, the rack setting and each member's name, address, rack and
        vnodes; not member states.
        """
        return self._hash

    @property
    def vnode_count(self) -> int:
        """Total number of vnode points on the ring."""
        return len(self._points)

    def member(self, name: str) -> Member | None:
        """The member called ``name``, or ``None``."""
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return (
            f"Ring(hash={self._hash!r}, members={len(self._members)}, replicas={self._replicas}, "
            f"rack_aware_replicas={self._rack_aware}, vnodes={len(self._points)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self._hash == other._hash and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self._hash)

    # ------------------------------------------------------------------ serialization
    def to_bytes(self) -> bytes:
        """Canonical msgpack encoding (members sorted by name, states included, hash appended)."""
        if self._bytes is None:
            snap = _Snapshot(
                FORMAT_VERSION, self._replicas, self._rack_aware, list(self._members), self._hash
            )
            self._bytes = _encoder.encode(snap)
        return self._bytes

    # ------------------------------------------------------------------ lookups
    def address(self, key: bytes) -> int:
        """The ring address of ``key`` (MD5 as an int in [0, 2^128))."""
        return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")

    def redundancy(self, key: bytes) -> list[Member]:
        """The redundancy list of ``key``: N distinct nodes, primary first.

        Walks clockwise from the first vnode point ``>= address(key)``. Returns all nodes if the
        ring has fewer than N, and ``[]`` for an empty ring.
        """
        addr = int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")
        return list(self._lists[bisect_left(self._points, addr)])

    def redundancy_for_address(self, address: int) -> list[Member]:
        """Like :meth:`redundancy` for a precomputed ring address."""
        return list(self._lists[bisect_left(self._points, address)])

    def primary(self, key: bytes) -> Member | None:
        """The first node of the redundancy list of ``key`` (``None`` for an empty ring)."""
        lst = self._lists[bisect_left(self._points, self.address(key))]
        return lst[0] if lst else None

    def handoff(self, key: bytes, n: int) -> list[Member]:
        """Up to ``n`` further distinct nodes, continuing the clockwise walk past the redundancy list.

        These are the next candidates after the replicas (in walk order, skipping the replicas), e.g.
        for repair. Fewer are returned when the ring has no more nodes.
        """
        return self.handoff_for_address(self.address(key), n)

    def handoff_for_address(self, address: int, n: int) -> list[Member]:
        """Like :meth:`handoff` for a precomputed ring address."""
        if n <= 0 or not self._points:
            return []
        start = bisect_left(self._points, address)
        taken = {m.name for m in self._lists[start]}
        out: list[Member] = []
        seen: set[int] = set()
        owners = self._owners
        total = len(owners)
        for step in range(total):
            idx = owners[(start + step) % total]
            if idx in seen:
                continue
            seen.add(idx)
            member = self._members[idx]
            if member.name in taken:
                continue
            out.append(member)
            if len(out) == n:
                break
        return out

    # ------------------------------------------------------------------ whole-ring views
    def ranges(self) -> Iterator[tuple[int, int, tuple[Member, ...]]]:
        """Yield ``(lo, hi, members)`` for every vnode range, in ring order.

        A key with address ``a`` is in the range when ``lo < a <= hi``, read modulo 2^128 (the first
        range wraps: its ``lo`` is the last point; with a single point ``lo == hi`` and the range is the
        whole ring). ``members`` is its redundancy list. Used to find
        what moves between two rings during a rebalance.
        """
        points = self._points
        for i, hi in enumerate(points):
            yield points[i - 1], hi, self._lists[i]

    def ownership(self, *, primary_only: bool = True) -> dict[str, float]:
        """Exact fraction of the address space each member holds (as primary, or in any replica slot).

        With ``primary_only=False`` the fractions sum to ``min(N, len(members))``.
        """
        share = dict.fromkeys((m.name for m in self._members), 0)
        points = self._points
        if not points:
            return {k: 0.0 for k in share}
        for i, hi in enumerate(points):
            width = hi - points[i - 1] if i else hi + RING_SIZE - points[-1]
            if primary_only:
                share[self._lists[i][0].name] += width
            else:
                for m in self._lists[i]:
                    share[m.name] += width
        return {k: v / RING_SIZE for k, v in share.items()}
