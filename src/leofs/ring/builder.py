"""The build half of the RING: turn a member list into a :class:`~leofs.ring.lookup.Ring`.

The ring is a partition ring: the address space (MD5 of the key) is cut into ``2^power`` equal
partitions by the top bits of the address, and each partition is assigned ``R = min(N, weighted
members)`` distinct members. Each member's number of partition replicas (its *quota*) follows its
weight (``vnodes``) exactly, give or take one, so the busiest node carries its weighted share.

Placement depends on the previous ring: :func:`build_ring` given ``previous`` keeps every
assignment that still fits the new quotas and only refills the vacated slots, so a join or leave
moves the optimal number of partitions. Because of that history the ring cannot be rebuilt from the
member list alone: the assignment table travels in :meth:`Ring.to_bytes` and is covered by the hash.

Which members belong in the ring is the caller's decision (the manager's; docs/ring.md).
"""

from __future__ import annotations

import heapq
import math
import sys
from array import array
from collections.abc import Sequence
from typing import Final

import msgspec

from leofs.ring.lookup import FORMAT_VERSION, Ring, snapshot_decoder
from leofs.ring.members import Member

MIN_POWER: Final = 10
"""Fewest partitions (2^10): fine-grained enough for small clusters, small on the wire."""

MAX_POWER: Final = 18
"""Most partitions a build chooses by itself (2^18); a previous ring may already have more."""

SLOTS_PER_MEMBER: Final = 64
"""The lightest member gets about this many partition replicas: its load is then within 1/64."""

_HOLE: Final = -1


def choose_power(weights: Sequence[int], replicas: int, previous: int = 0) -> int:
    """Partition power for members of ``weights`` (positive only) and ``replicas`` slots each.

    Never below ``previous``: partitions are split, never merged, so an old assignment maps onto
    the new table without movement.
    """
    power = max(MIN_POWER, previous)
    if replicas and weights:
        need = SLOTS_PER_MEMBER * sum(weights) / (replicas * min(weights))
        power = max(power, min(MAX_POWER, math.ceil(math.log2(max(need, 1.0)))))
    return power


def water_fill(weights: Sequence[int], caps: Sequence[int], total: int, held: Sequence[int] | None = None) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights``, none above its cap.

    Shares of capped members are fixed at their cap and the rest is spread again over the others;
    the fractional remainders go first to members whose ``held`` count is above their floor, then
    to the largest fractions (ties to the lower index). ``total`` must not exceed ``sum(caps)``.
    """
    n = len(weights)
    share = [0.0] * n
    active = [i for i in range(n) if weights[i] > 0 and caps[i] > 0]
    left = float(total)
    while active:
        wsum = sum(weights[i] for i in active)
        scale = left / wsum
        over = [i for i in active if scale * weights[i] > caps[i]]
        if not over:
            for i in active:
                share[i] = scale * weights[i]
            break
        for i in over:
            share[i] = float(caps[i])
            left -= caps[i]
        active = [i for i in active if i not in set(over)]
    out = [min(caps[i], math.floor(share[i] + 1e-9)) for i in range(n)]
    rest = total - sum(out)
    # members that already hold more than their floor keep their extra unit first: rounding then
    # moves nothing when a join or leave shifts every share by a fraction of a partition
    has = held if held is not None else [0] * n
    order = sorted(range(n), key=lambda i: (has[i] <= out[i], -(share[i] - out[i]), i))
    for i in order:
        if rest <= 0:
            break
        if out[i] < caps[i] and weights[i] > 0:
            out[i] += 1
            rest -= 1
    return out


def _mix(a: int, b: int) -> int:
    """A deterministic 32-bit scramble of two ints (a stable tie-breaker, not a secure hash)."""
    x = (a * 0x9E3779B1 + b * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    return x ^ (x >> 15)


class _Builder:
    """Mutable state of one build: ``parts[p]`` is the ordered replica list of partition ``p``."""

    def __init__(self, ordered: tuple[Member, ...], replicas: int, k: int, previous: Ring | None) -> None:
        self.members = ordered
        weighted = [i for i, m in enumerate(ordered) if m.vnodes > 0]
        self.r = min(replicas, len(weighted))
        self.power = choose_power([ordered[i].vnodes for i in weighted], self.r, previous.power if previous else 0)
        self.parts_n = 1 << self.power
        rack_of: list[int] = []
        rack_ids: dict[str, int] = {}
        for idx, m in enumerate(ordered):
            rack_of.append(-1 - idx if m.rack is None else rack_ids.setdefault(m.rack, len(rack_ids)))
        self.rack_of = rack_of
        self.k = min(k, self.r, len({rack_of[i] for i in weighted})) if k > 1 else 0
        self.parts: list[list[int]] = self._inherit(previous)
        self.count = [0] * len(ordered)
        for row in self.parts:
            for i in row:
                if i != _HOLE:
                    self.count[i] += 1
        self.quota = self._quotas(weighted)

    # -- starting point -------------------------------------------------------------------------------
    def _inherit(self, previous: Ring | None) -> list[list[int]]:
        """The previous assignment on this table (split if the power grew), minus departed members."""
        if previous is None or self.r == 0:
            return [[_HOLE] * self.r for _ in range(self.parts_n)]
        index = {m.name: i for i, m in enumerate(self.members) if m.vnodes > 0}
        old_rows = previous.partition_lists()
        shift = self.power - previous.power
        parts: list[list[int]] = []
        for p in range(self.parts_n):
            row = [index.get(m.name, _HOLE) for m in old_rows[p >> shift]][: self.r]
            row += [_HOLE] * (self.r - len(row))
            parts.append(row)
        return parts

    def _quotas(self, weighted: list[int]) -> list[int]:
        n = len(self.members)
        weights = [m.vnodes for m in self.members]
        total = self.parts_n * self.r
        if not self.k:
            return water_fill(weights, [self.parts_n if w else 0 for w in weights], total, self.count)
        # rack-aware: a rack may hold at most R-k+1 replicas of a partition; share racks first
        racks = sorted({self.rack_of[i] for i in weighted})
        rack_weight = [sum(weights[i] for i in weighted if self.rack_of[i] == rk) for rk in racks]
        rack_size = [sum(1 for i in weighted if self.rack_of[i] == rk) for rk in racks]
        per_rack = self.r - self.k + 1
        rack_caps = [self.parts_n * min(per_rack, size) for size in rack_size]
        rack_held = [sum(self.count[i] for i in weighted if self.rack_of[i] == rk) for rk in racks]
        rack_share = water_fill(rack_weight, rack_caps, total, rack_held)
        quota = [0] * n
        for rk, share in zip(racks, rack_share, strict=True):
            inside = [i for i in weighted if self.rack_of[i] == rk]
            for i, q in zip(
                inside,
                water_fill(
                    [weights[i] for i in inside], [self.parts_n] * len(inside), share, [self.count[i] for i in inside]
                ),
                strict=True,
            ):
                quota[i] = q
        return quota

    # -- rack checks ----------------------------------------------------------------------------------
    def _fits(self, row: list[int], cand: int) -> bool:
        """May ``cand`` take a hole of ``row`` (not there yet, and the rack rule stays reachable)?"""
        if cand in row:
            return False
        if not self.k:
            return True
        racks = {self.rack_of[i] for i in row if i != _HOLE}
        holes = row.count(_HOLE)
        racks.add(self.rack_of[cand])
        return len(racks) + holes - 1 >= self.k

    def _fix_racks(self) -> None:
        """Vacate slots of inherited rows that can no longer reach k distinct racks."""
        if not self.k:
            return
        for row in self.parts:
            while True:
                members = [i for i in row if i != _HOLE]
                racks = {self.rack_of[i] for i in members}
                if len(racks) + row.count(_HOLE) >= self.k:
                    break
                # the last member whose rack an earlier member already has
                dup = next(i for j, i in reversed(list(enumerate(members)))
                           if self.rack_of[i] in {self.rack_of[x] for x in members[:j]})  # fmt: skip
                row[row.index(dup)] = _HOLE
                self.count[dup] -= 1

    # -- the three passes -----------------------------------------------------------------------------
    def _drop_excess(self) -> None:
        """Vacate the partitions of over-quota members, preferring rows without a hole yet, so that
        the members with room can take every hole without displacing anyone else."""
        over = {i for i in range(len(self.members)) if self.count[i] > self.quota[i]}
        held: dict[int, list[int]] = {i: [] for i in over}
        for p, row in enumerate(self.parts):
            for i in row:
                if i in over:
                    held[i].append(p)
        for i in sorted(over):
            excess = self.count[i] - self.quota[i]
            mine = held[i]
            mine.sort(key=lambda p: (self.parts[p].count(_HOLE), ((p + 1) * 2654435761 + i * 40503) & 0xFFFFFFFF))
            for p in mine[:excess]:
                row = self.parts[p]
                row[row.index(i)] = _HOLE
            self.count[i] -= excess

    def _fill(self) -> None:
        """Give every hole to the member furthest below its quota that fits the row."""
        # ties between equally wanting members go to a pseudo-random one (_mix), so that partition
        # lists are well mixed: a failed node's partitions then have their other copies spread out
        heap = [(-(self.quota[i] - self.count[i]), _mix(i, self.count[i]), i) for i in range(len(self.members))
                if self.quota[i] > self.count[i]]  # fmt: skip
        heapq.heapify(heap)
        for row in self.parts:
            for slot in range(self.r):
                if row[slot] != _HOLE:
                    continue
                skipped: list[tuple[int, int, int]] = []
                chosen = _HOLE
                while heap:
                    item = heapq.heappop(heap)
                    if self._fits(row, item[2]):
                        chosen = item[2]
                        break
                    skipped.append(item)
                for item in skipped:
                    heapq.heappush(heap, item)
                if chosen == _HOLE:
                    chosen = self._rescue(row)
                else:
                    want = self.quota[chosen] - self.count[chosen] - 1
                    if want > 0:
                        heapq.heappush(heap, (-want, _mix(chosen, self.count[chosen] + 1), chosen))
                row[slot] = chosen
                self.count[chosen] += 1

    def _rescue(self, row: list[int]) -> int:
        """No member with room fits ``row``: the fitting member least over its quota takes the slot.

        Swapping with another partition would keep every count on quota but move a second copy;
        one slot over quota costs less than that (the balance bound has the room)."""
        fitting = [i for i in range(len(self.members)) if self.members[i].vnodes > 0 and self._fits(row, i)]
        if not fitting:  # only when the rack rule cannot be met at all: place without it
            fitting = [i for i in range(len(self.members)) if self.members[i].vnodes > 0 and i not in row]
        return min(fitting, key=lambda i: (self.count[i] - self.quota[i], _mix(i, len(row)), i))

    def _order(self) -> None:
        """Order every row: the first k members from distinct racks, then balance primaries (row
        order moves no data, so it is free to choose)."""
        r = self.r
        if r == 0:
            return
        if self.k:
            for row in self.parts:
                racks: set[int] = set()
                head: list[int] = []
                for i in row:
                    if len(head) < self.k and self.rack_of[i] not in racks:
                        racks.add(self.rack_of[i])
                        head.append(i)
                row[:] = head + [i for i in row if i not in head]
        n = len(self.members)
        weights = [m.vnodes for m in self.members]
        want = water_fill(weights, self.count, self.parts_n)
        primaries = [0] * n
        for row in self.parts:
            primaries[row[0]] += 1
        # swap the primary role from a member above its primary quota to one further below it, until
        # no swap helps (each swap lowers the total excess, so this ends)
        for _ in range(16):
            swapped = False
            for row in self.parts:
                first = row[0]
                over = primaries[first] - want[first]
                if over <= 0:
                    continue
                for j in range(1, r):
                    y = row[j]
                    if over - (primaries[y] - want[y]) < 2:
                        continue
                    # a swap inside the first k keeps their racks; from beyond, y must bring a new rack
                    if j >= self.k > 0 and self.rack_of[y] in {self.rack_of[i] for i in row[1 : self.k]}:
                        continue
                    row[0], row[j] = y, first
                    primaries[first] -= 1
                    primaries[y] += 1
                    swapped = True
                    break
            if not swapped:
                break

    def build(self) -> list[list[int]]:
        self._fix_racks()
        self._drop_excess()
        self._fill()
        self._order()
        return self.parts


def _table_bytes(parts: list[list[int]]) -> bytes:
    table = array("H", [i for row in parts for i in row])
    if sys.byteorder == "big":
        table.byteswap()
    return table.tobytes()


def table_rows(table: bytes, r: int) -> list[tuple[int, ...]]:
    """Decode a partition table (uint16 little-endian member indices, ``r`` per partition)."""
    arr = array("H")
    arr.frombytes(table)
    if sys.byteorder == "big":
        arr.byteswap()
    flat = arr.tolist()
    return [tuple(flat[j : j + r]) for j in range(0, len(flat), r)] if r else []


def build_ring(members: Sequence[Member], *, replicas: int, rack_aware_replicas: int = 0,
               previous: Ring | None = None) -> Ring:  # fmt: skip
    """Build the ring of ``members`` with ``replicas`` (N) copies per key.

    Every given member is listed; a member with weight (``vnodes``) 0 owns nothing. Each partition
    gets ``min(N, weighted members)`` distinct members, each member a number of partitions
    proportional to its weight (at most one replica per partition). With ``rack_aware_replicas=k >
    1`` the first ``k`` members of every list come from distinct racks when the ring has that many (a
    member without a rack is a rack of its own).

    With ``previous`` (the ring in force), assignments that still fit are kept: only the data of
    the partitions whose members changed moves. The result is deterministic: the same members in
    any order and the same previous ring give the same ring and hash. Raises :class:`ValueError`
    for N < 1, k < 0 or duplicate names.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if rack_aware_replicas < 0:
        raise ValueError(f"rack_aware_replicas must be >= 0, got {rack_aware_replicas}")
    ordered = tuple(sorted(members, key=lambda m: m.name))
    for i in range(1, len(ordered)):
        if ordered[i - 1].name == ordered[i].name:
            raise ValueError(f"duplicate member name {ordered[i].name!r}")
    if len(ordered) > 0xFFFF:
        raise ValueError("a ring holds at most 65535 members")
    builder = _Builder(ordered, replicas, rack_aware_replicas, previous)
    parts = builder.build()
    return Ring(members=ordered, replicas=replicas, rack_aware_replicas=rack_aware_replicas, power=builder.power,
                table=_table_bytes(parts), rows=[tuple(row) for row in parts])  # fmt: skip


def ring_from_bytes(data: bytes) -> Ring:
    """Decode :meth:`Ring.to_bytes` output.

    Raises :class:`ValueError` if the data is malformed, of an unknown version, if the table does
    not fit the members, or if the recomputed hash differs from the recorded one.
    """
    try:
        snap = snapshot_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid ring encoding: {exc}") from exc
    if snap.version != FORMAT_VERSION:
        raise ValueError(f"unsupported ring format version {snap.version}")
    if not 0 <= snap.power <= 24 or snap.replicas < 1:
        raise ValueError(f"bad ring parameters: power {snap.power}, replicas {snap.replicas}")
    r = min(snap.replicas, sum(1 for m in snap.members if m.vnodes > 0))
    if len(snap.table) != (1 << snap.power) * r * 2:
        raise ValueError(f"ring table of {len(snap.table)} bytes does not fit 2^{snap.power} partitions x {r}")
    rows = table_rows(snap.table, r)
    n = len(snap.members)
    for row in rows:
        if len(set(row)) != len(row) or any(i >= n for i in row):
            raise ValueError("ring table names an unknown member or one twice in a partition")
    names = [m.name for m in snap.members]
    if names != sorted(set(names)):
        raise ValueError("ring members are not sorted and unique")
    ring = Ring(members=tuple(snap.members), replicas=snap.replicas, rack_aware_replicas=snap.rack_aware_replicas,
                power=snap.power, table=snap.table, rows=rows)  # fmt: skip
    if ring.hash != snap.hash:
        raise ValueError(f"ring hash mismatch: recorded {snap.hash}, rebuilt {ring.hash}")
    return ring
