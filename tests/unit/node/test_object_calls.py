"""The object calls without a protocol (leofs.node.object_calls): each answer's status and fields,
which both the HTTP API and the binary protocol encode as they are, on a real node's store and
coordinator (one node, N=1)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from leofs.internal.messages import PutHeader
from leofs.node.object_calls import Answer, ObjectCalls
from leofs.storage.model import Entry
from tests.unit.node.nodetest_helpers import TestCluster, run_cluster


def _run(tmp: Path, test: Callable[[TestCluster], Awaitable[None]]) -> None:
    run_cluster(tmp, test, names=["s1"], n=1, w=1, r=1, d=1)


def _calls(c: TestCluster) -> ObjectCalls:
    node = c.nodes["s1"]
    return ObjectCalls(node.store, node.coordinator)


def _entry(answer: Answer) -> Entry:
    assert answer.entry is not None, answer
    return answer.entry


def test_replica_writes_answer_the_entry_and_whether_it_was_applied(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        calls = _calls(c)
        stored = await calls.put(0, b"b/k", b"v2", PutHeader(clock=2000, timestamp=2000), coordinate=False)
        assert (stored.status, stored.applied, stored.written) == (200, True, None)
        assert _entry(stored).clock == 2000
        older = await calls.put(0, b"b/k", b"v1", PutHeader(clock=1000, timestamp=1000), coordinate=False)
        assert (older.status, older.applied, _entry(older).clock) == (200, False, 2000)  # the newer one stays
        tomb = await calls.delete(0, b"b/k", coordinate=False, clock=3000, timestamp=3000)
        assert (tomb.status, tomb.applied, _entry(tomb).tombstone) == (200, True, True)
        # a replica write without the coordinator's clock, or one the store cannot hold: 400, nothing stored
        assert await calls.put(0, b"b/x", b"v", PutHeader(), coordinate=False) == Answer(
            400, "a replica write needs the coordinator's clock")  # fmt: skip
        assert await calls.delete(0, b"b/x", coordinate=False) == Answer(
            400, "a replica delete needs the coordinator's clock")  # fmt: skip
        too_long = b"b/" + b"k" * 70000
        bad = await calls.put(0, too_long, b"v", PutHeader(clock=1, timestamp=1), coordinate=False)
        assert bad.status == 400 and "key longer than" in bad.message
        assert c.local("s1", b"b/x") is None

    _run(tmp_path, body)


def test_coordinated_writes_answer_written_or_the_refusal(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        calls = _calls(c)
        put = await calls.put(0, b"b/k", b"data", PutHeader(), coordinate=True, deadline=time.time() + 30)
        assert put.status == 200 and put.written is not None and put.entry is None
        clock = put.written.entry.clock
        late = await calls.put(0, b"b/late", b"data", PutHeader(), coordinate=True, deadline=time.time() - 1)
        assert late == Answer(503, "the request arrived after its deadline")
        assert c.local("s1", b"b/late") is None  # refused before it got a clock
        late = await calls.delete(0, b"b/k", coordinate=True, deadline=time.time() - 1)
        assert late.status == 503 and _local_clock(c, b"b/k") == clock
        # a compare-and-set delete whose expected clock is not the current one: 412, nothing written
        refused = await calls.delete(0, b"b/k", coordinate=True, expect=clock - 1)
        assert refused.status == 412 and refused.message and _local_clock(c, b"b/k") == clock
        deleted = await calls.delete(0, b"b/k", coordinate=True, expect=clock)
        assert deleted.status == 200 and deleted.written is not None and deleted.written.entry.tombstone
        assert deleted.written.previous is not None and deleted.written.previous.clock == clock

    _run(tmp_path, body)


def _local_clock(c: TestCluster, key: bytes) -> int | None:
    entry = c.local("s1", key)
    return None if entry is None else entry.clock


def test_meta_and_get_answer_each_status(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        calls = _calls(c)
        for coordinate in (False, True):
            assert await calls.meta(0, b"b/none", coordinate=coordinate) == Answer(404)
            assert await calls.get(0, b"b/none", coordinate=coordinate) == Answer(404)
        put = await calls.put(0, b"b/k", b"0123456789", PutHeader(), coordinate=True)
        assert put.written is not None
        entry = put.written.entry
        assert await calls.meta(0, b"b/k", coordinate=True) == Answer(200, entry=entry)
        assert await calls.get(0, b"b/k", coordinate=False) == Answer(200, entry=entry, data=b"0123456789")
        assert (await calls.get(0, b"b/k", coordinate=False, start=2, length=3)).data == b"234"
        assert (await calls.get(0, b"b/k", coordinate=False, start=8, length=100)).data == b"89"
        assert await calls.get(0, b"b/k", coordinate=False, start=10) == Answer(200, entry=entry, data=b"")
        assert await calls.get(0, b"b/k", coordinate=False, clock=entry.clock - 1) == Answer(
            409, f"local clock {entry.clock}")  # fmt: skip
        # match: the caller's cache holds this version (the entry, no data); another clock reads it
        assert await calls.get(0, b"b/k", coordinate=True, match=entry.clock) == Answer(304, entry=entry)
        assert (await calls.get(0, b"b/k", coordinate=True, match=entry.clock - 1)).status == 200
        for start, length in ((11, None), (-1, None), (0, -1)):
            assert await calls.get(0, b"b/k", coordinate=False, start=start, length=length) == Answer(
                416, "range outside the object")  # fmt: skip
        tomb = await calls.delete(0, b"b/k", coordinate=True)
        assert tomb.written is not None
        # META answers a tombstone (replicas compare them); GET of one is 404
        assert await calls.meta(0, b"b/k", coordinate=False) == Answer(200, entry=tomb.written.entry)
        assert await calls.get(0, b"b/k", coordinate=False) == Answer(404)

    _run(tmp_path, body)


def test_a_large_read_is_a_file_region_and_a_damaged_small_one_is_409(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        calls = _calls(c)
        store = c.nodes["s1"].store
        big = os.urandom(store.verify_below + 4096)  # not verified on read: sent from the file as it is
        await calls.put(0, b"b/big", big, PutHeader(), coordinate=True)
        answer = await calls.get(0, b"b/big", coordinate=False, start=100, length=5000)
        assert answer.status == 200 and answer.data == b"" and answer.file is not None
        fobj, offset, n = answer.file
        with fobj:
            fobj.seek(offset)
            assert n == 5000 and fobj.read(n) == big[100:5100]
        put = await calls.put(0, b"b/small", b"S" * 100, PutHeader(), coordinate=True)
        assert put.written is not None
        _damage(c.base / "s1", put.written.entry.data_offset, b"S" * 100)
        assert await calls.get(0, b"b/small", coordinate=False) == Answer(409, "local copy failed its checksum")

    _run(tmp_path, body)


def _damage(data_dir: Path, offset: int, data: bytes) -> None:
    """Flip a byte of ``data`` where a container log holds it at ``offset``."""
    for log in sorted((data_dir / "avs").glob("*.log")):
        with open(log, "r+b") as f:
            f.seek(offset)
            if f.read(len(data)) == data:
                f.seek(offset + 10)
                f.write(b"X")
                return
    raise AssertionError("the needle's data was not found")


def test_a_version_replaced_and_compacted_during_a_get_is_sent_at_its_own_size(tmp_path: Path) -> None:
    """The race: between the lookup and the read, the key is overwritten with a smaller object and
    its container compacted (the looked-up needle is gone). The read looks again and must send the
    new version whole, never the old one's length from the new one's offset."""

    async def body(c: TestCluster) -> None:
        node = c.nodes["s1"]
        store, coordinator = node.store, node.coordinator
        calls = _calls(c)
        size = store.verify_below + 300_000  # served from the file (sendfile), unverified
        old, new = os.urandom(size), os.urandom(size - 200_000)
        await calls.put(0, b"b/k", old, PutHeader(), coordinate=True)
        check_read = coordinator.check_read

        async def racing_check_read(ns: int, key: bytes) -> Entry | None:
            entry = await check_read(ns, key)  # the lookup sees the old version...
            await calls.put(0, b"b/k", new, PutHeader(), coordinate=True)  # ...then it is replaced
            await store.compact()  # and its needle compacted away
            return entry

        coordinator.check_read = racing_check_read  # type: ignore[method-assign]
        answer = await calls.get(0, b"b/k", coordinate=True)
        coordinator.check_read = check_read  # type: ignore[method-assign]
        assert answer.status == 200 and answer.file is not None
        assert _entry(answer).size == len(new)
        fobj, offset, n = answer.file
        with fobj:
            fobj.seek(offset)
            assert n == len(new) and fobj.read(n) == new
        # a range that the new version no longer has: 416, nothing sent
        coordinator.check_read = racing_check_read  # type: ignore[method-assign]
        await calls.put(0, b"b/k", old, PutHeader(), coordinate=True)
        answer = await calls.get(0, b"b/k", coordinate=True, start=len(new) + 1)
        assert answer == Answer(416, "range outside the object")

    _run(tmp_path, body)
