"""Reads on storage nodes: GET /obj (ranges, sendfile, 409), /meta, read-repair with R=2, /scan,
the cluster secret, and no ring yet."""

from __future__ import annotations

import os
from pathlib import Path

from leofs.internal.client import InternalClient
from leofs.internal.messages import (
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    ROLE_REPLICA,
    PutHeader,
    encode_b64,
    from_scan_items,
    key_param,
    scan_decoder,
)
from leofs.internal.secret import FAILURE_BURST
from leofs.storage.model import CommonPrefix, Entry
from tests.unit.node.nodetest_helpers import SECRET, TestCluster, eventually, q, run_cluster


def test_get_ranges_large_objects_meta_and_clock_mismatch(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        big = os.urandom(1536 * 1024)  # above verify_below: served with sendfile
        status, entry = await c.put("s1", b"b/big", big, header=PutHeader(meta=b"M"))
        assert status == 200 and entry is not None
        for node in ("s1", "s2"):  # s2 may not have its copy yet: as coordinator it asks the others
            status, data, got = await c.get(node, b"b/big", role=ROLE_COORDINATE)
            assert status == 200 and data == big and got is not None and got.meta == b"M"
            status, data, _ = await c.get(node, b"b/big", start=1000, length=70000)
            assert status == 200 and data == big[1000:71000]
        status, data, _ = await c.get("s1", b"b/big", start=len(big) - 5, length=100)
        assert (status, data) == (200, big[-5:])
        assert (await c.get("s1", b"b/big", start=len(big) + 1))[0] == 416
        assert (await c.get("s1", b"b/big", clock=entry.clock))[0] == 200
        assert (await c.get("s1", b"b/big", clock=entry.clock - 1))[0] == 409
        status, small = await c.put("s1", b"b/small", b"0123456789")
        assert status == 200 and small is not None
        assert (await c.get("s2", b"b/small", start=2, length=3, role=ROLE_COORDINATE))[1] == b"234"
        assert (await c.get("s2", b"b/none"))[0] == 404
        # /meta: the entry, tombstones included; GET of a tombstone is 404
        status, meta = await c.meta("s3", b"b/small", role=ROLE_COORDINATE)
        assert status == 200 and meta is not None and meta.clock == small.clock and meta.size == 10
        assert (await c.meta("s3", b"b/none"))[0] == 404
        status, tomb = await c.delete("s1", b"b/small")
        assert status == 200 and tomb is not None
        await eventually(lambda: (c.local("s3", b"b/small") or small).tombstone)
        status, meta = await c.meta("s3", b"b/small", role=ROLE_COORDINATE)
        assert status == 200 and meta is not None and meta.tombstone and meta.clock == tomb.clock
        assert (await c.get("s3", b"b/small"))[0] == 404

    run_cluster(tmp_path, body)


async def _stale_copy(c: TestCluster, key: bytes, stale: str) -> None:
    """Version 2000 on every node but ``stale``, which holds version 1000."""
    for node in c.names:
        clock, data = (1000, b"old") if node == stale else (2000, b"new")
        status, _ = await c.put(node, key, data, role=ROLE_REPLICA, header=PutHeader(clock=clock, timestamp=clock))
        assert status == 200


def _ring_order(c: TestCluster, key: bytes) -> list[str]:
    rings = c.nodes["s1"].cluster.rings
    assert rings is not None
    return [m.name for m in rings.read_nodes(key)]


def test_read_repair_pulls_a_newer_copy_into_the_coordinator(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        await _stale_copy(c, b"b/rr", "s3")
        status, data, entry = await c.get("s3", b"b/rr", role=ROLE_COORDINATE)
        assert (status, data) == (200, b"new") and entry is not None and entry.clock == 2000
        local = c.local("s3", b"b/rr")
        assert local is not None and local.clock == 2000  # repaired, not just served
        # /meta as coordinator repairs too
        await _stale_copy(c, b"b/rr2", "s2")
        status, meta = await c.meta("s2", b"b/rr2", role=ROLE_COORDINATE)
        assert status == 200 and meta is not None and meta.clock == 2000
        assert (c.local("s2", b"b/rr2") or meta).clock == 2000
        assert (await c.get("s2", b"b/rr2"))[1] == b"new"

    run_cluster(tmp_path, body, r=2)


def test_read_repair_queues_a_stale_peer_and_the_replayer_fixes_it(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        key = b"b/peer"
        coordinator = "s1"
        peer = next(n for n in _ring_order(c, key) if n != coordinator)  # the one R=2 compares with
        await _stale_copy(c, key, peer)
        status, data, _ = await c.get(coordinator, key, role=ROLE_COORDINATE)
        assert (status, data) == (200, b"new")
        await eventually(lambda: (c.local(peer, key) or Entry(0, b"", 0, 0, False, 0, b"", b"", 0, 0, 0, 0, 0, 0, 0))
                         .clock == 2000)
        assert (await c.get(peer, key))[1] == b"new"

    run_cluster(tmp_path, body, r=2)


def test_scan(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        for k in (b"b/a/1", b"b/a/2", b"b/b", b"b/c", b"x/other"):
            assert (await c.put("s1", k, b"v"))[0] == 200
        assert (await c.delete("s1", b"b/c"))[0] == 200
        await eventually(lambda: (c.local("s2", b"b/c") is not None and c.local("s2", b"b/c").tombstone))  # type: ignore[union-attr]
        await eventually(lambda: all(c.local("s2", k) is not None for k in (b"b/a/1", b"b/a/2", b"b/b")))

        async def scan(**params: str) -> list[Entry | CommonPrefix]:
            async with c.client.request("GET", c.addr("s2"), "/scan", params={"ns": "0", **params}) as resp:
                assert resp.status == 200
                return from_scan_items(scan_decoder.decode(await resp.read()))

        items = await scan(prefix=key_param(b"b/"))
        assert [i.key for i in items if isinstance(i, Entry)] == [b"b/a/1", b"b/a/2", b"b/b"]
        items = await scan(prefix=key_param(b"b/"), tombstones="1")
        assert [(i.key, i.tombstone) for i in items if isinstance(i, Entry)][-1] == (b"b/c", True)
        items = await scan(prefix=key_param(b"b/"), delimiter=key_param(b"/"), limit="10")
        assert [i.prefix if isinstance(i, CommonPrefix) else i.key for i in items] == [b"b/a/", b"b/b"]
        items = await scan(prefix=key_param(b"b/"), start_after=key_param(b"b/a/1"), limit="1")
        assert [i.key for i in items if isinstance(i, Entry)] == [b"b/a/2"]

    run_cluster(tmp_path, body)


def test_cluster_secret_is_required_everywhere(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        assert (await c.put("s1", b"b/s", b"v"))[0] == 200
        failures = 0
        for secret in ("", "wrong"):
            bad = InternalClient(secret)
            try:
                calls = [("GET", "/obj"), ("GET", "/meta"), ("GET", "/scan"), ("GET", "/int/health"),
                         ("DELETE", "/obj"), ("POST", "/int/ring"), ("POST", "/adm/du")]
                for method, path in calls:
                    async with bad.request(method, c.addr("s1"), path, params=q(0, b"b/s")) as resp:
                        # refused; after a burst of failures, throttled (429)
                        assert resp.status == (403 if failures < FAILURE_BURST else 429), (method, path)
                        failures += 1
                # refused at Expect: 100-continue time, before the body is sent
                headers = {ROLE_HEADER: ROLE_REPLICA, PUT_HEADER: encode_b64(PutHeader(clock=1))}
                async with bad.request("PUT", c.addr("s1"), "/obj", params=q(0, b"b/s"), data=b"x" * 100000,
                                       headers=headers, expect100=True) as resp:
                    assert resp.status == (403 if failures < FAILURE_BURST else 429)
                    failures += 1
            finally:
                await bad.close()
        good = InternalClient(SECRET)
        try:
            async with good.request("GET", c.addr("s1"), "/int/health") as resp:
                assert resp.status == 200 and (await resp.json())["name"] == "s1"
        finally:
            await good.close()
        assert (await c.get("s1", b"b/s"))[1] == b"v"

    run_cluster(tmp_path, body)


def test_coordinate_requests_get_503_until_a_ring_exists(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        node = await c.start("s4")  # never got a ring
        assert node.cluster.rings is None
        assert (await c.put("s4", b"b/k", b"v"))[0] == 503
        assert (await c.delete("s4", b"b/k"))[0] == 503
        # local data is still served as a replica
        status, _ = await c.put("s4", b"b/k", b"v", role=ROLE_REPLICA, header=PutHeader(clock=5))
        assert status == 200 and (await c.get("s4", b"b/k"))[1] == b"v"

    run_cluster(tmp_path, body)


def test_a_local_miss_asks_the_other_replicas_even_with_r1(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        # s3 missed the write (it was down and its repair has not run yet)
        for node in ("s1", "s2"):
            status, _ = await c.put(node, b"b/missed", b"data", role=ROLE_REPLICA, header=PutHeader(clock=77))
            assert status == 200
        status, data, entry = await c.get("s3", b"b/missed", role=ROLE_COORDINATE)
        assert (status, data) == (200, b"data") and entry is not None and entry.clock == 77
        assert (c.local("s3", b"b/missed") or entry).clock == 77 and c.local("s3", b"b/missed") is not None
        assert (await c.get("s3", b"b/never", role=ROLE_COORDINATE))[0] == 404
        assert (await c.meta("s3", b"b/never", role=ROLE_COORDINATE))[0] == 404

    run_cluster(tmp_path, body, r=1)
