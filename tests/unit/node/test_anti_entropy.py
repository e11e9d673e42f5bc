"""Anti-entropy digests over real stores: equal holdings give equal bucket digests, a difference shows
in exactly its key's bucket, and the versions pages list every shared key once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leofs.internal.messages import VersionsRequest
from leofs.node.anti_entropy import BUCKETS, Sharing, bucket_of, digests, local_versions, versions_page
from leofs.ring import Member, build_ring, key_address
from leofs.storage.store import ObjectStore

RING = build_ring([Member(f"n{i}", f"127.0.0.1:{9000 + i}", None, 16) for i in range(4)], replicas=3)


async def _fill(path: Path, keys: dict[bytes, int]) -> None:
    store = await ObjectStore.open(path, reserve_bytes=0)
    try:
        for key, clock in keys.items():
            if clock < 0:
                await store.delete(0, key, clock=-clock)
            else:
                await store.put(0, key, b"x", clock=clock)
    finally:
        await store.close()


def test_digests_differ_in_the_bucket_of_each_difference(tmp_path: Path) -> None:
    keys = {f"b/k{i}".encode(): 10 + i for i in range(300)}
    other = dict(keys)
    other[b"b/k7"] = 999  # newer here
    other[b"b/k8"] = -998  # a tombstone here
    del other[b"b/k9"]  # missing here
    asyncio.run(_fill(tmp_path / "a", keys))
    asyncio.run(_fill(tmp_path / "b", other))
    sharing = Sharing(RING, "n0", "n1")
    mine = digests(tmp_path / "a" / "index.sqlite3", sharing)
    theirs = digests(tmp_path / "b" / "index.sqlite3", sharing)
    assert len(mine.digests) == BUCKETS
    shared = [k for k in keys if sharing.shared(key_address(k))]
    assert sum(mine.counts) == len(shared) and 0 < len(shared) < len(keys)
    expected = {bucket_of(key_address(k)) for k in (b"b/k7", b"b/k8", b"b/k9") if k in shared}
    assert {b for b in range(BUCKETS) if mine.digests[b] != theirs.digests[b]} == expected
    assert digests(tmp_path / "a" / "index.sqlite3", sharing) == mine  # deterministic


def test_versions_pages_list_every_shared_key_once(tmp_path: Path) -> None:
    keys = {f"b/p{i:04d}".encode(): 5 for i in range(500)}
    asyncio.run(_fill(tmp_path / "a", keys))
    index = tmp_path / "a" / "index.sqlite3"
    sharing = Sharing(RING, "n1", "n2")
    seen: list[bytes] = []
    after_ns, after_key = None, b""
    while True:
        page = versions_page(index, sharing, VersionsRequest("n1", "n2", RING.hash, None, after_ns, after_key, 7))
        assert len(page.items) <= 7
        last = None if page.last_ns is None else (page.last_ns, page.last_key)
        here = local_versions(index, sharing, None, None if after_ns is None else (after_ns, after_key), last)
        assert sorted(here) == [(i.ns, i.key) for i in page.items]  # the same keys over the same interval
        seen += [i.key for i in page.items]
        if page.last_ns is None:
            break
        after_ns, after_key = page.last_ns, page.last_key
    assert seen == sorted(k for k in keys if sharing.shared(key_address(k)))
