"""A SharedStore (what a gateway worker process uses) against a real ObjectStore over a real
write link: its writes land through the owner's writer, its reads come straight from the files,
and it keeps reading correctly across the owner's compactions."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from leofs.storage.model import DiskFull
from leofs.storage.needle import MAX_KEY
from leofs.storage.shared import SharedStore
from leofs.storage.store import ObjectStore
from leofs.storage.write_link import LinkLost, WriteLink, WriteService

#: a namespace: the engine gives namespaces no meaning
NS_OBJECT = 0


@asynccontextmanager
async def pair(tmp_path: Path, **kw: int) -> AsyncIterator[tuple[ObjectStore, SharedStore, WriteService]]:
    owner = await ObjectStore.open(tmp_path / "data", reserve_bytes=kw.get("reserve_bytes", 0))
    service = WriteService(owner, tmp_path / "w.sock")
    await service.start()
    shared = SharedStore(tmp_path / "data", await WriteLink.connect(tmp_path / "w.sock"))
    try:
        yield owner, shared, service
    finally:
        await shared.close()
        await service.close()
        await owner.close()


def test_writes_through_the_link_reads_from_the_files(tmp_path: Path) -> None:
    async def main() -> None:
        async with pair(tmp_path) as (owner, shared, _):
            results = await asyncio.gather(*(shared.put(NS_OBJECT, b"k%03d" % i, b"v" * i, meta=b"M")
                                             for i in range(200)))  # fmt: skip
            assert all(r.applied and r.previous is None for r in results)
            assert owner.stats.batches < 200  # the owner's group commit batched the link's writes
            for i in (0, 7, 199):
                entry = shared.get(NS_OBJECT, b"k%03d" % i)
                assert entry == owner.get(NS_OBJECT, b"k%03d" % i) == results[i].entry
                assert await shared.read(entry) == b"v" * i
            entry = shared.get(NS_OBJECT, b"k150")
            assert entry is not None
            f, off, size = shared.open_data(entry)
            with f:
                assert os.pread(f.fileno(), size, off) == b"v" * 150
            again = await shared.put(NS_OBJECT, b"k007", b"new")
            assert again.previous == results[7].entry  # the replaced entry travels back
            gone = await shared.delete(NS_OBJECT, b"k008")
            assert gone.applied and gone.previous == results[8].entry
            assert owner.get(NS_OBJECT, b"k008").tombstone  # type: ignore[union-attr]
            page = shared.scan(NS_OBJECT, b"k", limit=5)
            assert [e.key for e in page] == [b"k000", b"k001", b"k002", b"k003", b"k004"]  # type: ignore[union-attr]
            # A write the owner's own gateway makes is visible to the worker at once, and back.
            await owner.put(NS_OBJECT, b"from-owner", b"o")
            assert await shared.read(shared.get(NS_OBJECT, b"from-owner")) == b"o"  # type: ignore[arg-type]

    asyncio.run(main())


def test_large_and_small_frames_interleaved(tmp_path: Path) -> None:
    """Megabyte chunks (received in place) and small records (several per read) in any mix."""

    async def main() -> None:
        async with pair(tmp_path) as (_, shared, _service):
            blobs = {b"big%d" % i: os.urandom(3 * 1024 * 1024 + i * 7919) for i in range(6)}
            small = {b"s%03d" % i: os.urandom(i % 300) for i in range(300)}
            work = [shared.put(NS_OBJECT, k, v) for k, v in (blobs | small).items()]
            random.Random(5).shuffle(work)
            await asyncio.gather(*work)
            for k, v in (blobs | small).items():
                entry = shared.get(NS_OBJECT, k)
                assert entry is not None and await shared.read(entry) == v

    asyncio.run(main())


def test_a_cancelled_write_does_not_break_the_link(tmp_path: Path) -> None:
    """An aborted upload cancels its chunk writes mid-send: the frame still goes out whole, so the
    link stays in step and later writes land intact."""

    async def main() -> None:
        async with pair(tmp_path) as (owner, shared, _service):
            big = os.urandom(24 * 1024 * 1024)
            for delay in (0, 0.001, 0.005):
                task = asyncio.ensure_future(shared.put(NS_OBJECT, b"big", big))
                await asyncio.sleep(delay)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                # a link out of step would never answer: bounded, so the test fails instead of hanging
                r = await asyncio.wait_for(shared.put(NS_OBJECT, b"after", b"intact %f" % delay), 20)
                assert r.applied and await shared.read(r.entry) == b"intact %f" % delay
            entry = owner.get(NS_OBJECT, b"big")  # if it landed, it landed whole
            assert entry is None or await owner.read(entry) == big

    asyncio.run(main())


def test_errors_cross_the_link(tmp_path: Path) -> None:
    async def main() -> None:
        async with pair(tmp_path, reserve_bytes=1 << 62) as (_, shared, _service):
            with pytest.raises(DiskFull):  # the reserve is larger than any disk
                await shared.put(NS_OBJECT, b"k", b"data")
            with pytest.raises(ValueError):
                await shared.put(NS_OBJECT, b"x" * (MAX_KEY + 1), b"data")
            assert (await shared.delete(NS_OBJECT, b"k")).applied  # deletes work on a full disk

    asyncio.run(main())


def test_reads_survive_compaction_by_the_owner(tmp_path: Path) -> None:
    async def main() -> None:
        async with pair(tmp_path) as (owner, shared, _):
            for i in range(50):
                await shared.put(NS_OBJECT, b"k%02d" % i, b"old" * 100)
            for i in range(50):
                await shared.put(NS_OBJECT, b"k%02d" % i, b"new%02d" % i)
            before = shared.get(NS_OBJECT, b"k10")
            assert before is not None
            assert await shared.read(before) == b"new10"  # opens (and keeps) the log files
            await owner.compact()
            after = shared.get(NS_OBJECT, b"k10")
            assert after is not None and after.generation > before.generation
            # An entry read before the compaction still resolves (same needle, new place) ...
            assert await shared.read(before) == b"new10"
            # ... and every current entry reads from the new generation.
            for i in range(50):
                e = shared.get(NS_OBJECT, b"k%02d" % i)
                assert e is not None and await shared.read(e) == b"new%02d" % i
            assert all(g == after.generation for (c, g) in shared._files if c == after.container)

    asyncio.run(main())


def test_link_lost_fails_pending_and_later_writes(tmp_path: Path) -> None:
    async def main() -> None:
        owner = await ObjectStore.open(tmp_path / "data", reserve_bytes=0)
        service = WriteService(owner, tmp_path / "w.sock")
        await service.start()
        lost = asyncio.Event()
        link = await WriteLink.connect(tmp_path / "w.sock", on_lost=lost.set)
        shared = SharedStore(tmp_path / "data", link)
        await shared.put(NS_OBJECT, b"a", b"1")
        await service.close()  # the owner hangs up: the worker notices and refuses further writes
        await asyncio.wait_for(lost.wait(), 5)
        with pytest.raises(LinkLost):
            await shared.put(NS_OBJECT, b"b", b"2")
        await shared.close()
        await owner.close()

    asyncio.run(main())
