"""The runtime half of the RING: an immutable, precomputed routing table.

A :class:`Ring` is built by :func:`leofs.ring.builder.build_ring` (or decoded with
:func:`leofs.ring.builder.ring_from_bytes`). It holds, for each of its ``2^power`` partitions, the
redundancy list of the keys in it, so a lookup is one MD5, one shift and one list index.

Addresses live on a 2^128 ring. A key's address is MD5(key) read as a big-endian integer; its
partition is the top ``power`` bits of the address.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from leofs.ring.members import Member

RING_SIZE: Final = 1 << 128
"""Number of addresses on the ring (MD5 is 128 bits)."""

FORMAT_VERSION: Final = 2
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
    power: int
    table: bytes
    hash: str


class _Placement(msgspec.Struct, array_like=True, frozen=True):
    """What the ring hash covers: everything that decides placement and routing, not node states."""

    version: int
    replicas: int
    rack_aware_replicas: int
    members: list[tuple[str, str, str | None, int]]
    power: int
    table: bytes


snapshot_decoder: Final = msgspec.msgpack.Decoder(_Snapshot)
_encoder: Final = msgspec.msgpack.Encoder()


def placement_hash(members: Sequence[Member], replicas: int, rack_aware_replicas: int, power: int,
                   table: bytes) -> str:  # fmt: skip
    """CRC32 (zlib) of the canonical placement record, as 8 lowercase hex chars.

    ``members`` must already be in canonical order (sorted by name). The record holds the partition
    table itself, so two rings that place any partition differently have different hashes even
    when their members are the same (the table depends on the ring it was built from). Node states
    are deliberately left out: a node going down does not move any key.
    """
    record = _Placement(
        FORMAT_VERSION,
        replicas,
        rack_aware_replicas,
        [(m.name, m.address, m.rack, m.vnodes) for m in members],
        power,
        table,
    )
    return f"{zlib.crc32(_encoder.encode(record)) & 0xFFFFFFFF:08x}"


class Ring:
    """An immutable partition ring (LeoFS RING, balanced by weight).

    Attributes are read-only. Use :func:`leofs.ring.build_ring` to make one; the constructor is
    internal and trusts its arguments.
    """

    __slots__ = (
        "_by_name",
        "_bytes",
        "_hash",
        "_lists",
        "_members",
        "_power",
        "_rack_aware",
        "_replicas",
        "_rows",
        "_shift",
        "_table",
    )

    _members: tuple[Member, ...]
    _replicas: int
    _rack_aware: int
    _power: int
    _shift: int
    _table: bytes
    _rows: list[tuple[int, ...]]
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
        power: int,
        table: bytes,
        rows: list[tuple[int, ...]],
    ) -> None:
        """Internal: use :func:`leofs.ring.build_ring`. ``rows[p]`` = member indices of partition p."""
        self._members = members
        self._replicas = replicas
        self._rack_aware = rack_aware_replicas
        self._power = power
        self._shift = 128 - power
        self._table = table
        self._rows = rows
        interned: dict[tuple[int, ...], tuple[Member, ...]] = {}
        lists: list[tuple[Member, ...]] = []
        for row in rows:
            entry = interned.get(row)
            if entry is None:
                entry = interned[row] = tuple(members[i] for i in row)
            lists.append(entry)
        if not rows:  # no weighted member: every partition is empty
            lists = [()] * (1 << power)
        self._lists = lists
        self._hash = placement_hash(members, replicas, rack_aware_replicas, power, table)
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

        Covers the format version, N, the rack setting, each member's name, address, rack and
        weight, and the partition table; not member states.
        """
        return self._hash

    @property
    def power(self) -> int:
        """The partition power: the ring has ``2^power`` partitions (top bits of the address)."""
        return self._power

    @property
    def partition_count(self) -> int:
        """Number of partitions (``2^power``)."""
        return 1 << self._power

    def partition(self, key: bytes) -> int:
        """The partition of ``key``: the top ``power`` bits of MD5(key)."""
        return self.address(key) >> self._shift

    def partition_lists(self) -> list[tuple[Member, ...]]:
        """The redundancy list of every partition, in partition order (a copy of the table)."""
        return list(self._lists)

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
            f"rack_aware_replicas={self._rack_aware}, partitions={1 << self._power})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self._hash == other._hash and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self._hash)

    # ------------------------------------------------------------------ serialization
    def to_bytes(self) -> bytes:
        """Canonical msgpack encoding: members sorted by name (states included), the partition
        table (uint16 little-endian member indices, R per partition), the hash."""
        if self._bytes is None:
            snap = _Snapshot(FORMAT_VERSION, self._replicas, self._rack_aware, list(self._members), self._power,
                             self._table, self._hash)  # fmt: skip
            self._bytes = _encoder.encode(snap)
        return self._bytes

    # ------------------------------------------------------------------ lookups
    def address(self, key: bytes) -> int:
        """The ring address of ``key`` (MD5 as an int in [0, 2^128))."""
        return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")

    def redundancy(self, key: bytes) -> list[Member]:
        """The redundancy list of ``key``: N distinct nodes, primary first.

        The list of the key's partition. Returns all weighted nodes if the ring has fewer than N,
        and ``[]`` for an empty ring.
        """
        addr = int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")
        return list(self._lists[addr >> self._shift])

    def redundancy_for_address(self, address: int) -> list[Member]:
        """Like :meth:`redundancy` for a precomputed ring address."""
        return list(self._lists[address >> self._shift])

    def primary(self, key: bytes) -> Member | None:
        """The first node of the redundancy list of ``key`` (``None`` for an empty ring)."""
        lst = self._lists[self.address(key) >> self._shift]
        return lst[0] if lst else None

    def handoff(self, key: bytes, n: int) -> list[Member]:
        """Up to ``n`` further distinct nodes after the redundancy list (e.g. repair candidates).

        Walks the following partitions in order and collects members not yet listed; fewer are
        returned when the ring has no more weighted nodes.
        """
        return self.handoff_for_address(self.address(key), n)

    def handoff_for_address(self, address: int, n: int) -> list[Member]:
        """Like :meth:`handoff` for a precomputed ring address."""
        if n <= 0:
            return []
        start = address >> self._shift
        lists = self._lists
        total = len(lists)
        taken = {m.name for m in lists[start]}
        out: list[Member] = []
        for step in range(1, total):
            for member in lists[(start + step) % total]:
                if member.name not in taken:
                    taken.add(member.name)
                    out.append(member)
                    if len(out) == n:
                        return out
            if len(taken) >= len(self._members):
                break
        return out

    # ------------------------------------------------------------------ whole-ring views
    def ranges(self) -> Iterator[tuple[int, int, tuple[Member, ...]]]:
        """Yield ``(lo, hi, members)`` for every partition, in ring order.

        A key with address ``a`` is in the range when ``lo < a <= hi``, read modulo 2^128 (the first
        partition's ``lo`` is 2^128 - 1, i.e. -1). ``members`` is its redundancy list. Used to find
        what moves between two rings during a rebalance.
        """
        shift = self._shift
        for p, members in enumerate(self._lists):
            yield ((p << shift) - 1) % RING_SIZE, ((p + 1) << shift) - 1, members

    def ownership(self, *, primary_only: bool = True) -> dict[str, float]:
        """Exact fraction of the address space each member holds (as primary, or in any replica slot).

        With ``primary_only=False`` the fractions sum to ``min(N, weighted members)``.
        """
        counts = dict.fromkeys((m.name for m in self._members), 0)
        for lst in self._lists:
            if primary_only:
                if lst:
                    counts[lst[0].name] += 1
            else:
                for m in lst:
                    counts[m.name] += 1
        total = len(self._lists)
        return {k: v / total for k, v in counts.items()}
