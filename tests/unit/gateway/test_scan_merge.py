"""``ClusterBackend.scan`` (the listing merge) against a model of keys on a ring with N copies.

Every node's answer to ``GET /scan`` is produced from the model (what the node holds, with the
storage node's scan rules: tombstones included, delimiter roll-ups from live keys only, a common
prefix not above ``start_after`` not returned again); the merge, the per-node share and the rounds
are the real code. A whole listing, page after page, must equal the model's listing: no key missed,
none twice, the newest version of each key, with fewer than N nodes down or failing.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from functools import cache
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leofs.gateway.cluster_backend import ClusterBackend, share
from leofs.internal.client import InternalClient
from leofs.internal.membership import ClusterState
from leofs.internal.messages import Consistency, NodeInfo
from leofs.ring import Member, Ring, RingPair, build_ring
from leofs.s3.errors import S3Error
from leofs.storage.model import CommonPrefix, Entry

Item = Entry | CommonPrefix


@dataclass(frozen=True)
class Version:
    clock: int
    tombstone: bool


@cache
def _ring(nodes: int, copies: int) -> Ring:
    return build_ring([Member(f"storage_{i:03d}", f"127.0.0.1:{10000 + i}") for i in range(nodes)], replicas=copies)


def _entry(key: bytes, v: Version) -> Entry:
    return Entry(0, key, v.clock, v.clock, v.tombstone, 0 if v.tombstone else 1, b"" if v.tombstone else b"m" * 16,
                 b"", 0, 0, 0, 0, 1, 0, 0)  # fmt: skip


def _sort_key(item: Item) -> bytes:
    return item.key if isinstance(item, Entry) else item.prefix


def node_answer(held: dict[bytes, Version], prefix: bytes, start: bytes, limit: int,
                delimiter: bytes | None) -> list[Item]:  # fmt: skip
    """What a storage node answers (storage/reads.py ``scan``, as a model over its copies)."""
    out: list[Item] = []
    last_cp = None
    for key in sorted(held):
        if not key.startswith(prefix):
            continue
        v = held[key]
        i = key.find(delimiter, len(prefix)) if delimiter else -1
        if delimiter and i >= 0:
            if v.tombstone:  # only live keys make a common prefix
                continue
            cp = key[: i + len(delimiter)]
            if cp <= start or cp == last_cp:
                continue
            out.append(CommonPrefix(cp))
            last_cp = cp
        elif key > start:
            out.append(_entry(key, v))
        if len(out) >= limit:
            break
    return out


class ModelBackend(ClusterBackend):
    """The real merge; each node's answer comes from the model instead of HTTP."""

    def __init__(self, state: ClusterState, held: dict[str, dict[bytes, Version]], failing: set[str],
                 fixed: int | None) -> None:  # fmt: skip
        super().__init__(cast(InternalClient, None), state)
        self.held = held
        self.failing = failing
        self.fixed = fixed
        self.asked: list[int] = []  # rows asked per node, per round

    def _per_node(self, wanted: int, limit: int, copies: int, nodes: int) -> int:
        return self.fixed if self.fixed is not None else super()._per_node(wanted, limit, copies, nodes)

    async def _scan_all(self, nodes: list[NodeInfo], ns: int, prefix: bytes, start: bytes, limit: int,
                        delimiter: bytes | None) -> list[list[Item]]:  # fmt: skip
        self.asked.append(limit)
        # a node whose call fails is left out, as _scan_all does after an exception
        pages = [node_answer(self.held[n.name], prefix, start, limit, delimiter)
                 for n in nodes if n.name not in self.failing]  # fmt: skip
        if not pages:
            raise S3Error("ServiceUnavailable", "No storage node answered the listing.")
        return pages


def model_listing(held: dict[str, dict[bytes, Version]], up: set[str], prefix: bytes,
                  delimiter: bytes | None) -> list[tuple[bytes, int | None]]:  # fmt: skip
    """The listing the cluster must give: per key the newest version among the nodes that answer;
    a common prefix wherever one of them holds a live key under it (nodes roll up their own copies)."""
    newest: dict[bytes, Version] = {}
    prefixes: set[bytes] = set()
    for name in up:
        for key, v in held[name].items():
            if not key.startswith(prefix):
                continue
            i = key.find(delimiter, len(prefix)) if delimiter else -1
            if delimiter and i >= 0:
                if not v.tombstone:
                    prefixes.add(key[: i + len(delimiter)])
            elif key not in newest or v.clock > newest[key].clock:
                newest[key] = v
    items: list[tuple[bytes, int | None]] = [(k, v.clock) for k, v in newest.items() if not v.tombstone]
    items += [(p, None) for p in prefixes]
    return sorted(items)


def list_all(backend: ModelBackend, prefix: bytes, delimiter: bytes | None, limit: int,
             bound: int) -> list[tuple[bytes, int | None]]:  # fmt: skip
    """Page after page, each continuing after the last item of the one before (as scan_page does)."""
    got: list[tuple[bytes, int | None]] = []
    start = b""
    for _ in range(bound):
        page = asyncio.run(backend.scan(0, prefix, start_after=start, limit=limit, delimiter=delimiter))
        got += [(i.key, i.clock) if isinstance(i, Entry) else (i.prefix, None) for i in page]
        assert all(not (isinstance(i, Entry) and i.tombstone) for i in page)
        if len(page) < limit:
            return got
        start = _sort_key(page[-1])
    raise AssertionError("the listing did not end")


def _keys(rng: random.Random, bulk: int, small: list[bytes]) -> list[bytes]:
    keys = set(small)
    for i in range(bulk):
        # a mix of top-level keys and keys under a few "directories"
        keys.add(b"d%d/k%04d" % (i % 5, i) if i % 3 else b"k%04d" % i)
    return sorted(keys)


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, object]:
    nodes = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 12, 40, 100]))
    copies = draw(st.integers(1, min(3, nodes)))
    small = draw(st.lists(st.binary(min_size=1, max_size=4).map(lambda b: bytes(b"ab/"[x % 3] for x in b)),
                          max_size=30))  # fmt: skip
    bulk = draw(st.sampled_from([0, 0, 50, 400]))
    seed = draw(st.integers(0, 2**32))
    lag = draw(st.sampled_from([0.0, 0.0, 0.2, 0.6]))  # chance that a holder missed writes
    tombstones = draw(st.sampled_from([0.0, 0.3, 0.8]))
    names = [f"storage_{i:03d}" for i in range(nodes)]
    down = draw(st.lists(st.sampled_from(names), max_size=copies - 1, unique=True))
    stopped = {n for n in down if draw(st.booleans())}  # the manager says "stop"; the rest fail their calls
    prefix = draw(st.sampled_from([b"", b"a", b"a/", b"d1/", b"k0", b"zz"]))
    delimiter = draw(st.sampled_from([None, b"/"]))
    limit = draw(st.sampled_from([1, 2, 3, 11, 101, 1001]))
    fixed = draw(st.sampled_from([None, None, 1, 2, 5]))

    rng = random.Random(seed)
    ring = _ring(nodes, copies)
    held: dict[str, dict[bytes, Version]] = {n: {} for n in names}
    for key in _keys(rng, bulk, small):
        versions = [Version(c, rng.random() < tombstones) for c in range(1, rng.randint(1, 3) + 1)]
        for member in ring.redundancy(key):
            have = len(versions) if rng.random() >= lag else rng.randint(0, len(versions) - 1)
            if have:
                held[member.name][key] = versions[have - 1]
    return {"nodes": nodes, "copies": copies, "ring": ring, "held": held, "down": set(down), "stopped": stopped,
            "prefix": prefix, "delimiter": delimiter, "limit": limit, "fixed": fixed}  # fmt: skip


def _backend(c: dict[str, object]) -> ModelBackend:
    state = ClusterState()
    ring = cast(Ring, c["ring"])
    stopped = cast(set[str], c["stopped"])
    state.rings = RingPair(ring)
    state.consistency = Consistency(n=cast(int, c["copies"]))
    state.nodes = {m.name: NodeInfo(m.name, "storage", m.address, "stop" if m.name in stopped else "running")
                   for m in ring.members}  # fmt: skip
    return ModelBackend(state, cast(dict[str, dict[bytes, Version]], c["held"]), cast(set[str], c["down"]) - stopped,
                        cast(int | None, c["fixed"]))  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_listing_matches_the_model(c: dict[str, object]) -> None:
    backend = _backend(c)
    held = cast(dict[str, dict[bytes, Version]], c["held"])
    up = set(held) - cast(set[str], c["down"])
    prefix, delimiter, limit = cast(bytes, c["prefix"]), cast(bytes | None, c["delimiter"]), cast(int, c["limit"])
    expected = model_listing(held, up, prefix, delimiter)
    got = list_all(backend, prefix, delimiter, limit, bound=len(expected) + 2)
    assert got == expected
    assert all(1 <= asked <= limit for asked in backend.asked)


def test_each_node_is_asked_for_about_its_share() -> None:
    # few nodes: every node may hold the whole page (unchanged); many: 2 x N / nodes of it
    assert share(1001, 1001, 3, 3) == 1001
    assert share(1001, 1001, 3, 6) == 1001
    assert share(1001, 1001, 3, 10) == 601
    assert share(1001, 1001, 3, 100) == 61
    assert share(1001, 1001, 3, 1000) == 16
    assert share(5, 1001, 3, 3) == 16  # a short remainder still asks enough to pass a few tombstones
    assert share(2, 2, 3, 1000) == 2  # never more than a page


@pytest.mark.parametrize("nodes", [3, 100])
def test_one_round_for_an_even_bucket(nodes: int) -> None:
    """A bucket whose keys spread evenly over 100 nodes is listed in one round of 61 rows per node."""
    ring = _ring(nodes, 3)
    held: dict[str, dict[bytes, Version]] = {m.name: {} for m in ring.members}
    keys = [b"obj-%06d" % i for i in range(40 * nodes)]
    for key in keys:
        for member in ring.redundancy(key):
            held[member.name][key] = Version(1, False)
    c = {"ring": ring, "copies": 3, "held": held, "down": set(), "stopped": set(), "fixed": None}
    backend = _backend(c)
    page = asyncio.run(backend.scan(0, b"", limit=1001))
    assert [i.key for i in page if isinstance(i, Entry)] == keys[:1001]
    assert backend.asked == [1001 if nodes == 3 else 61]
