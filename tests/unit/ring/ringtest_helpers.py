"""Shared strategies and an independent reference implementation for the ring tests."""

from __future__ import annotations

import hashlib
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
    """Distinct-named members with small vnode counts (fast to build) unless told otherwise."""
    node_names = draw(st.lists(names, min_size=min_size, max_size=max_size, unique=True))
    vn = vnodes if vnodes is not None else st.integers(min_value=1, max_value=40)
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


def md5_int(data: bytes) -> int:
    return int(hashlib.md5(data).hexdigest(), 16)


def reference_walk(members: Sequence[Member], address: int) -> list[str]:
    """All distinct node names in clockwise order from ``address``, computed naively from scratch."""
    points: list[tuple[int, str]] = []
    for m in members:
        alias = "node_" + hashlib.md5(m.name.encode()).hexdigest()[:8]
        points.extend((md5_int(f"{alias}_{i}".encode()), m.name) for i in range(m.vnodes))
    points.sort()
    after = [name for p, name in points if p >= address] + [name for p, name in points if p < address]
    order: list[str] = []
    for name in after:
        if name not in order:
            order.append(name)
    return order


def small_ring(n: int, replicas: int = 3, prefix: str = "node", vnodes: int = 168) -> Ring:
    return build_ring(
        [Member(f"{prefix}{i}", f"127.0.0.1:{7000 + i}", vnodes=vnodes) for i in range(n)], replicas=replicas
    )
