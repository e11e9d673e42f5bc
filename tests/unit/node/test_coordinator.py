"""Quorum writes and deletes between real storage nodes: W/D acks, 503, repair queue, LWW."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leofs.internal.messages import (
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    ROLE_REPLICA,
    PutHeader,
    Written,
    encode_b64,
    written_decoder,
)
from leofs.storage.needle import MAX_META
from tests.unit.node.nodetest_helpers import TestCluster, eventually, q, run_cluster


def test_quorum_write_reaches_all_replicas_with_one_clock(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        meta = bytes(range(256)) * (MAX_META // 256)  # the largest metadata travels in X-Leofs-Put
        status, entry = await c.put("s1", b"b/k", b"hello", header=PutHeader(meta=meta, cnumber=0))
        assert status == 200 and entry is not None
        # W=2 answered; the third copy lands right after
        await eventually(lambda: all(c.local(n, b"b/k") is not None for n in c.names))
        for n in c.names:
            e = c.local(n, b"b/k")
            assert e is not None and (e.clock, e.timestamp, e.meta, e.md5) == (
                entry.clock, entry.timestamp, meta, entry.md5)
            status, data, got = await c.get(n, b"b/k")
            assert (status, data) == (200, b"hello") and got is not None and got.clock == entry.clock
        # a later write from another coordinator gets a newer clock everywhere
        status, second = await c.put("s2", b"b/k", b"world")
        assert status == 200 and second is not None and second.clock > entry.clock
        await eventually(lambda: all((c.local(n, b"b/k") or entry).clock == second.clock for n in c.names))

    run_cluster(tmp_path, body)


def test_replica_down_write_succeeds_and_is_repaired_when_it_returns(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        await c.stop("s3")  # its server is gone; the manager has not noticed (still "running")
        status, entry = await c.put("s1", b"b/down", b"data")
        assert status == 200 and entry is not None
        await eventually(lambda: [(t.target, t.key, t.clock) for t in c.nodes["s1"].queue.all()]
                         == [("s3", b"b/down", entry.clock)])  # queued once s3's write failed
        assert c.nodes["s1"].queue.enqueued == 1  # leofs_repair_queue_enqueued_total
        status, tomb = await c.delete("s2", b"b/gone-later")  # D=2 with one down: fine too
        assert status == 200 and tomb is not None and tomb.tombstone
        await c.start("s3")
        await c.push_view()
        await eventually(lambda: (c.local("s3", b"b/down") or tomb).clock == entry.clock)
        await eventually(lambda: (c.local("s3", b"b/gone-later") or entry).clock == tomb.clock)
        status, data, _ = await c.get("s3", b"b/down")
        assert (status, data) == (200, b"data")
        await eventually(lambda: not c.nodes["s1"].queue.all() and not c.nodes["s2"].queue.all())

    run_cluster(tmp_path, body)


def test_two_down_fails_fast_with_503(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        # the manager reports them stopped: refused before anything is written
        c.states["s2"] = c.states["s3"] = "stop"
        await c.push_view()
        assert (await c.put("s1", b"b/x", b"x"))[0] == 503
        assert (await c.delete("s1", b"b/x"))[0] == 503
        assert c.local("s1", b"b/x") is None and not c.nodes["s1"].queue.all()
        # servers gone but still "running" in the view: tried, failed, 503; the local copy stays
        c.states["s2"] = c.states["s3"] = "running"
        await c.push_view()
        await c.stop("s2")
        await c.stop("s3")
        status, _ = await c.put("s1", b"b/y", b"y")
        assert status == 503
        assert c.local("s1", b"b/y") is not None  # LeoFS does not roll back
        assert sorted(t.target for t in c.nodes["s1"].queue.all()) == ["s2", "s3"]

    run_cluster(tmp_path, body)


def test_stopped_targets_are_not_hammered_then_repaired_when_running(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        c.states["s3"] = "stop"
        await c.push_view()
        status, entry = await c.put("s1", b"b/later", b"v")
        assert status == 200 and entry is not None
        assert c.local("s3", b"b/later") is None  # a stopped replica is not written
        await asyncio.sleep(0.5)  # several replayer rounds
        [task] = c.nodes["s1"].queue.all()
        assert task.target == "s3" and task.attempts == 0
        c.states["s3"] = "running"
        await c.push_view()
        await eventually(lambda: (c.local("s3", b"b/later") or PutHeader(clock=0)).clock == entry.clock)

    run_cluster(tmp_path, body)


def test_last_writer_wins_on_replicas(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        status, new = await c.put("s1", b"b/lww", b"new", role=ROLE_REPLICA, header=PutHeader(clock=2000, timestamp=1))
        assert status == 200 and new is not None and new.clock == 2000
        status, kept = await c.put("s1", b"b/lww", b"old", role=ROLE_REPLICA, header=PutHeader(clock=1000, timestamp=1))
        assert status == 200 and kept is not None and kept.clock == 2000
        assert (await c.get("s1", b"b/lww"))[1] == b"new"
        status, kept = await c.delete("s1", b"b/lww", role=ROLE_REPLICA, clock=1500, timestamp=1)
        assert status == 200 and kept is not None and not kept.tombstone
        # a replica write without the coordinator's clock is refused
        assert (await c.put("s1", b"b/lww", b"x", role=ROLE_REPLICA))[0] == 400
        # a coordinated write after it gets a newer clock than the stored one, even from the future
        status, _ = await c.put("s1", b"b/future", b"f", role=ROLE_REPLICA,
                                    header=PutHeader(clock=(1 << 62), timestamp=1))
        assert status == 200
        status, over = await c.put("s1", b"b/future", b"g")
        assert status == 200 and over is not None and over.clock > (1 << 62)

    run_cluster(tmp_path, body)


def test_a_coordinated_write_reports_the_version_it_replaced(tmp_path: Path) -> None:
    """The coordinator answers with its replica's replaced entry, and a parent record's data (the
    manifest), so the gateway frees the old chunks without a lookup before the write."""

    async def written(c: TestCluster, method: str, key: bytes, data: bytes = b"", cnumber: int = 0) -> Written:
        headers = {ROLE_HEADER: ROLE_COORDINATE, PUT_HEADER: encode_b64(PutHeader(cnumber=cnumber))}
        async with c.client.request(method, c.addr("s1"), "/obj", params=q(0, key),
                                    data=data if method == "PUT" else None, headers=headers) as resp:
            assert resp.status == 200
            return written_decoder.decode(await resp.read())

    async def body(c: TestCluster) -> None:
        first = await written(c, "PUT", b"b/obj", b"manifest-one", cnumber=2)
        assert first.previous is None  # a new key
        second = await written(c, "PUT", b"b/obj", b"manifest-two", cnumber=2)
        assert second.previous == first.entry and second.previous_data == b"manifest-one"
        third = await written(c, "PUT", b"b/obj", b"inline body")
        assert third.previous == second.entry and third.previous_data == b"manifest-two"
        gone = await written(c, "DELETE", b"b/obj")
        assert gone.entry.tombstone and gone.previous == third.entry
        assert gone.previous_data is None  # an inline object has no chunks: its data is not sent

    run_cluster(tmp_path, body)
