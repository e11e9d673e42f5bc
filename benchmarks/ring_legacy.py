"""The RING before issue 13 (LeoFS's vnode walk), kept only as the baseline of ``ring_sim.py``.

Each member owns ``vnodes`` points at MD5(f"{alias}_{i}"); a key's redundancy list is the clockwise
walk from the first point >= its address, collecting N distinct nodes. Nothing in ``src/`` uses it:
the product ring is the weighted partition ring of ``leofs.ring``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from leofs.ring import RING_SIZE, Member


class LegacyRing:
    """The vnode ring's lookups that the simulation needs (same names as :class:`leofs.ring.Ring`)."""

    def __init__(self, members: Sequence[Member], replicas: int) -> None:
        self.members = tuple(sorted(members, key=lambda m: m.name))
        self.replicas = replicas
        pairs = sorted(
            (int.from_bytes(hashlib.md5(f"{m.alias}_{i}".encode()).digest(), "big"), idx)
            for idx, m in enumerate(self.members)
            for i in range(m.vnodes)
        )
        self.points = [p for p, _ in pairs]
        owners = [idx for _, idx in pairs]
        target = min(replicas, len(set(owners)))
        ext = owners + owners
        lists: list[tuple[Member, ...]] = []
        interned: dict[tuple[int, ...], tuple[Member, ...]] = {}
        for start in range(len(owners)):
            picked: list[int] = []
            j = start
            while len(picked) < target:
                if ext[j] not in picked:
                    picked.append(ext[j])
                j += 1
            key = tuple(picked)
            lists.append(interned.setdefault(key, tuple(self.members[i] for i in key)))
        lists.append(lists[0] if lists else ())
        self.lists = lists

    def redundancy(self, key: bytes) -> list[Member]:
        addr = int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest(), "big")
        return list(self.lists[bisect_left(self.points, addr)])

    def redundancy_for_address(self, address: int) -> list[Member]:
        return list(self.lists[bisect_left(self.points, address)])

    def ranges(self) -> Iterator[tuple[int, int, tuple[Member, ...]]]:
        for i, hi in enumerate(self.points):
            yield self.points[i - 1], hi, self.lists[i]

    def ownership(self, *, primary_only: bool = True) -> dict[str, float]:
        share = dict.fromkeys((m.name for m in self.members), 0)
        for i, hi in enumerate(self.points):
            width = hi - self.points[i - 1] if i else hi + RING_SIZE - self.points[-1]
            for m in self.lists[i][:1] if primary_only else self.lists[i]:
                share[m.name] += width
        return {k: v / RING_SIZE for k, v in share.items()}
