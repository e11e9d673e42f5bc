"""Shared strategies and an independent reference implementation for the ring tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

from leofs.ring import Member, Ring, build_ring

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.@", min_size=1, max_size=24)


@st.composite
def member_lists(
    draw: st.DrawFn,
    min_size: int = 1,
    max_size: int = 10,
    vnodes: st.SearchStrategy[int] | None = None,
    racks: st.SearchStrategy[str | None] | None = None,
) -> list[Member]:
    """Distinct-named members with weights 10..40 unless told otherwise (a 4:1 ratio at most keeps the
    partition count at its minimum, so the rings are fast to build)."""
    node_names = draw(st.lists(names, min_size=min_size, max_size=max_size, unique=True))
    vn = vnodes if vnodes is not None else st.integers(min_value=10, max_value=40)
    rk = racks if racks is not None else st.none()
    return [
        Member(name=n, address=f"10.0.0.{i % 250}:{4000 + i}", rack=draw(rk), vnodes=draw(vn))
        for i, n in enumerate(node_names)
    ]


def random_addresses(count: int, seed: int = 12345) -> list[int]:
    """``count`` uniformly random ring addresses (as if MD5 of random keys), reproducible."""
    rnd = random.Random(seed)
    return [rnd.getrandbits(128) for _ in range(count)]


def primaries(ring: Ring, addresses: Sequence[int]) -> list[str]:
    """Primary node name for every address."""
    return [ring.redundancy_for_address(a)[0].name for a in addresses]


def copies_moved(old: Ring, new: Ring) -> float:
    """Fraction of the replica copies that a node gains from ``old`` to ``new`` (what a rebalance sends)."""
    assert old.power == new.power
    gained = sum(
        len({m.name for m in b} - {m.name for m in a})
        for a, b in zip(old.partition_lists(), new.partition_lists(), strict=True)
    )
    return gained / (new.partition_count * max(1, len(new.partition_lists()[0])))


def small_ring(n: int, replicas: int = 3, prefix: str = "node", vnodes: int = 168) -> Ring:
    return build_ring(
        [Member(f"{prefix}{i}", f"127.0.0.1:{7000 + i}", vnodes=vnodes) for i in range(n)], replicas=replicas
    )
