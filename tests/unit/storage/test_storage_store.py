"""ObjectStore behaviour: put/get/read/delete, last writer wins, scans, usage, compaction, scrub."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from leofs.storage.index import Index
from leofs.storage.model import CommonPrefix, CorruptData, Entry
from leofs.storage.needle import MAX_KEY
from leofs.storage.store import ObjectStore


def logs(path: Path) -> list[Path]:
    return sorted((path / "avs").glob("*.log"))


async def _open(path: Path, **kw: object) -> ObjectStore:
    kw.setdefault("reserve_bytes", 0)
    return await ObjectStore.open(path, **kw)  # type: ignore[arg-type]


def test_put_get_read_delete(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path)
        r = await s.put(0, b"a", b"hello world", meta=b"M", cindex=1, cnumber=2, csize=3)
        assert r.applied
        e = s.get(0, b"a")
        assert e == r.entry
        assert e is not None and e.md5 == hashlib.md5(b"hello world").digest()
        assert (e.meta, e.cindex, e.cnumber, e.csize, e.size) == (b"M", 1, 2, 3, 11)
        assert await s.read(e) == b"hello world"
        assert await s.read(e, 6) == b"world"
        assert await s.read(e, 2, 3) == b"llo"
        f, off, size = s.open_data(e)
        with f:
            assert os.pread(f.fileno(), size, off) == b"hello world"
        assert s.get(1, b"a") is None  # namespaces are separate
        d = await s.delete(0, b"a")
        assert d.applied and d.entry.tombstone and d.entry.size == 0
        e2 = s.get(0, b"a")
        assert e2 is not None and e2.tombstone
        # Deleting a missing key still records a tombstone.
        d2 = await s.delete(0, b"never")
        assert d2.applied and s.get(0, b"never") is not None
        await s.close()

    asyncio.run(main())


def test_key_limits(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path)
        big = "ü".encode() * (MAX_KEY // 2)  # MAX_KEY bytes of UTF-8
        await s.put(0, big, b"x")
        assert s.get(0, big) is not None
        with pytest.raises(ValueError):
            await s.put(0, big + b"x", b"x")
        await s.close()

    asyncio.run(main())


def test_last_writer_wins(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path)
        await s.put(0, b"k", b"new", clock=100, timestamp=5)
        old = await s.put(0, b"k", b"old", clock=50)
        assert not old.applied and old.entry.clock == 100
        same = await s.put(0, b"k", b"same", clock=100)
        assert not same.applied
        e = s.get(0, b"k")
        assert e is not None and await s.read(e) == b"new" and e.timestamp == 5
        # An older delete does not remove a newer put; a newer one does.
        assert not (await s.delete(0, b"k", clock=99)).applied
        assert (await s.delete(0, b"k", clock=200)).applied
        # A put older than the tombstone does not resurrect the key.
        assert not (await s.put(0, b"k", b"zombie", clock=150)).applied
        # Local clocks are monotonic and beat explicit clocks seen before.
        r = await s.put(0, b"k", b"local")
        assert r.applied and r.entry.clock > 200
        await s.close()

    asyncio.run(main())


def test_scan(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path)
        keys = [b"a", b"b/1", b"b/2", b"b/3/x", b"c/1", b"d", "é/1".encode(), b"\xff\xff/z"]
        for k in keys:
            await s.put(0, k, k)
        await s.put(1, b"other", b"")
        await s.put(0, b"c/2", b"")
        await s.delete(0, b"c/2")

        def names(items: list[Entry | CommonPrefix]) -> list[bytes]:
            return [i.prefix + b"*" if isinstance(i, CommonPrefix) else i.key for i in items]

        assert names(s.scan(0)) == sorted(keys)
        assert names(s.scan(0, b"b/")) == [b"b/1", b"b/2", b"b/3/x"]
        assert names(s.scan(0, b"b/", start_after=b"b/1")) == [b"b/2", b"b/3/x"]
        assert names(s.scan(0, limit=2)) == [b"a", b"b/1"]
        assert names(s.scan(0, delimiter=b"/")) == [
            b"a", b"b/*", b"c/*", b"d", "é/*".encode(), b"\xff\xff/*"
        ]  # fmt: skip
        assert names(s.scan(0, delimiter=b"/", limit=3)) == [b"a", b"b/*", b"c/*"]
        assert names(s.scan(0, delimiter=b"/", start_after=b"b/")) == [
            b"c/*", b"d", "é/*".encode(), b"\xff\xff/*"
        ]  # fmt: skip
        assert names(s.scan(0, b"b/", delimiter=b"/")) == [b"b/1", b"b/2", b"b/3/*"]
        tomb = s.scan(0, b"c/", include_tombstones=True)
        assert [e.key for e in tomb if isinstance(e, Entry)] == [b"c/1", b"c/2"]
        assert names(s.scan(0, b"c/")) == [b"c/1"]
        assert names(s.scan(1)) == [b"other"]
        await s.close()

    asyncio.run(main())


def test_delimiter_skips_without_visiting(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, sync=False)
        await asyncio.gather(*(s.put(0, b"big/%05d" % i, b"") for i in range(3000)))
        await s.put(0, b"z", b"")
        calls: list[int] = []
        real = s._reader.range

        def counting(*a: object) -> list[Entry]:
            rows = real(*a)  # type: ignore[arg-type]
            calls.append(len(rows))
            return rows

        s._reader.range = counting  # type: ignore[method-assign]
        out = s.scan(0, delimiter=b"/")
        assert [type(o).__name__ for o in out] == ["CommonPrefix", "Entry"]
        assert sum(calls) < 300  # far fewer rows than the 3,000 keys under big/
        await s.close()

    asyncio.run(main())


def test_usage_and_compaction(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, containers=2, sync=False, tombstone_grace=0.0)
        for i in range(200):
            await s.put(0, b"k%03d" % i, os.urandom(2000))
        for i in range(0, 200, 2):
            await s.put(0, b"k%03d" % i, b"v2-%03d" % i)
        for i in range(1, 200, 4):
            await s.delete(0, b"k%03d" % i)
        before = sum(p.stat().st_size for p in logs(tmp_path))
        u = s.usage()
        assert sum(x.total_count for x in u) == 200 + 100 + 50
        assert sum(x.active_count for x in u) == 150
        expect = {b"k%03d" % i: await s.read(e) for i in range(200)
                  if (e := s.get(0, b"k%03d" % i)) is not None and not e.tombstone}  # fmt: skip
        # Read during compaction with entries taken before it.
        entries = [e for k in expect if (e := s.get(0, k)) is not None]
        task = asyncio.create_task(s.compact())
        writes = [s.put(0, b"during%d" % i, b"x" * 100) for i in range(20)]
        await asyncio.gather(*writes)
        for e in entries:
            assert await s.read(e) == expect[e.key]
        st = await task
        assert st.state == "idle" and st.done == [0, 1] and st.progress == 1.0 and st.reclaimed_bytes > 0
        after = sum(p.stat().st_size for p in logs(tmp_path))
        assert after < before * 0.6
        assert len(logs(tmp_path)) == 2 and all(".g000002." in p.name for p in logs(tmp_path))
        for k, v in expect.items():
            e = s.get(0, k)
            assert e is not None and await s.read(e) == v
        for e in entries:  # stale entries still resolve to the moved needle
            assert await s.read(e) == expect[e.key]
        assert s.get(0, b"k001") is None  # tombstone past grace dropped
        assert sum(x.active_count for x in s.usage()) == 170
        assert await s.scrub() == []
        await s.close()
        s = await _open(tmp_path)
        for k, v in expect.items():
            e = s.get(0, k)
            assert e is not None and await s.read(e) == v
        await s.close()

    asyncio.run(main())


def test_compaction_keep_predicate(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, containers=1, sync=False)
        for i in range(10):
            await s.put(0, b"k%d" % i, b"v")
        await s.compact([0], keep=lambda e: e.key != b"k3")
        assert s.get(0, b"k3") is None and s.get(0, b"k4") is not None
        await s.close()

    asyncio.run(main())


def test_scrub_and_corrupt_read(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, containers=1)
        await s.put(0, b"a", b"A" * 100)
        r = await s.put(0, b"b", b"B" * 100)
        await s.put(0, b"c", b"C" * 100)
        assert await s.scrub() == []
        e = r.entry
        path = logs(tmp_path)[0]
        with open(path, "r+b") as f:
            f.seek(e.data_offset + 10)
            f.write(b"X")
        with pytest.raises(CorruptData):
            await s.read(e)
        assert await s.read(e, 50) == b"B" * 50  # partial reads are not verified
        damaged = await s.scrub()
        assert [(d.key, d.reason) for d in damaged] == [(b"b", "data checksum mismatch")]
        # Damage a header too: scrub reports it and finds the next needle.
        a = s.get(0, b"a")
        assert a is not None
        with open(path, "r+b") as f:
            f.seek(a.data_offset - 3)
            f.write(b"?")
        damaged = await s.scrub()
        assert len(damaged) == 2 and damaged[0].reason == "header checksum mismatch"
        await s.close()

    asyncio.run(main())


def test_rebuild_index_equal(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, containers=3, sync=False)
        for i in range(300):
            await s.put(i % 3, b"k%d" % (i % 120), b"v%d" % i, meta=b"m%d" % i)
            if i % 7 == 0:
                await s.delete(i % 3, b"k%d" % (i % 50))
        await s.compact([1])
        for i in range(40):
            await s.put(0, b"late%d" % i, b"x")
        before = Index(tmp_path / "index.sqlite3").all_rows()
        await s.rebuild_index()
        after = Index(tmp_path / "index.sqlite3").all_rows()
        assert after == before and len(before) > 100
        await s.close()
        # Losing the index database entirely is survivable too.
        for p in tmp_path.glob("index.sqlite3*"):
            p.unlink()
        s = await _open(tmp_path)
        assert Index(tmp_path / "index.sqlite3").all_rows() == before
        await s.close()

    asyncio.run(main())


def test_group_commit(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path)
        await asyncio.gather(*(s.put(0, b"k%d" % i, b"x" * 4096) for i in range(16)))
        assert s.stats.writes == 16
        assert 0 < s.stats.syncs < s.stats.writes
        assert s.stats.batches < 16
        await s.close()

    asyncio.run(main())


def test_reopen_keeps_container_count(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _open(tmp_path, containers=3)
        await s.put(0, b"x", b"1")
        await s.close()
        s = await _open(tmp_path, containers=8)
        assert s.containers == 3 and len(s.usage()) == 3
        e = s.get(0, b"x")
        assert e is not None and await s.read(e) == b"1"
        await s.close()

    asyncio.run(main())


def test_batches_rotate_over_containers_and_compaction_checks_the_container(tmp_path: Path) -> None:
    """Each group commit goes to the next container, so a key's versions live in different logs,
    possibly at the same generation and offset: compaction must not take an old one for current."""

    async def main() -> None:
        s = await _open(tmp_path, containers=4)
        first = await s.put(0, b"k", b"version-1")
        second = await s.put(0, b"k", b"version-2")  # the next batch: the next container
        assert first.entry.container != second.entry.container
        # both are the first needle of a generation-1 log: same generation, same offset
        assert (first.entry.generation, first.entry.data_offset) == (
            second.entry.generation, second.entry.data_offset)  # fmt: skip
        await s.compact([first.entry.container])
        cur = s.get(0, b"k")
        assert cur is not None and cur.clock == second.entry.clock
        assert await s.read(cur) == b"version-2"
        await s.close()
        s = await _open(tmp_path)
        cur = s.get(0, b"k")
        assert cur is not None and await s.read(cur) == b"version-2"
        assert s.stats.syncs == 0
        for i in range(40):  # concurrent writes share batches: fewer syncs than writes, one per batch
            await asyncio.gather(*(s.put(0, b"c%d-%d" % (i, j), b"x") for j in range(8)))
        assert s.stats.syncs == s.stats.batches < s.stats.writes
        assert {u.container for u in s.usage() if u.total_count} == {0, 1, 2, 3}
        await s.close()

    asyncio.run(main())


def test_an_index_out_of_step_with_one_log_is_rebuilt_from_all(tmp_path: Path) -> None:
    """If one container's log no longer holds what the index says, the index is rebuilt from every
    log: a key whose newest needle was in that log falls back to its version in another one."""

    async def main() -> None:
        s = await _open(tmp_path, containers=4)
        old = await s.put(0, b"k", b"old")
        new = await s.put(0, b"k", b"new")
        await s.put(0, b"other", b"o")
        await s.close()
        log_path = tmp_path / "avs" / f"{new.entry.container:06d}.g{new.entry.generation:06d}.log"
        os.truncate(log_path, 32)  # the log lost every needle (e.g. restored from an old copy)
        s = await _open(tmp_path)
        cur = s.get(0, b"k")
        assert cur is not None and cur.clock == old.entry.clock
        assert await s.read(cur) == b"old"
        other = s.get(0, b"other")
        assert other is not None and await s.read(other) == b"o"
        await s.close()

    asyncio.run(main())


def test_entry_cache_follows_writes_and_compaction(tmp_path: Path) -> None:
    """The owner's entry cache never answers with less than the last acknowledged write."""

    async def main() -> None:
        s = await _open(tmp_path)
        assert s.get(0, b"k") is None  # a miss is cached too ...
        r = await s.put(0, b"k", b"one")
        assert s.get(0, b"k") == r.entry  # ... and replaced when the write is acknowledged
        stale = await s.put(0, b"k", b"older", clock=r.entry.clock - 1)
        assert not stale.applied and s.get(0, b"k") == r.entry
        d = await s.delete(0, b"k")
        got = s.get(0, b"k")
        assert got is not None and got.tombstone and got == d.entry
        r2 = await s.put(0, b"k", b"two")
        await s.put(0, b"filler", b"x" * 1000)
        await s.compact()
        moved = s.get(0, b"k")  # compaction moved it: the cache does not keep the old place
        assert moved is not None and moved.clock == r2.entry.clock
        assert moved == Index(tmp_path / "index.sqlite3").get(0, b"k")
        assert await s.read(moved) == b"two"
        # many concurrent writes and reads of one key: after all are acknowledged, the cache agrees
        # with the index
        await asyncio.gather(*(s.put(0, b"hot", b"v%d" % i) for i in range(50)),
                             *(asyncio.sleep(0, s.get(0, b"hot")) for _ in range(50)))  # fmt: skip
        assert s.get(0, b"hot") == Index(tmp_path / "index.sqlite3").get(0, b"hot")
        await s.close()

    asyncio.run(main())
