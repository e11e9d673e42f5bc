"""Compare-and-set writes (``expect``) evaluated by the group-commit writer: against the index and
against the writes queued before them in the same batch, locally and over the write link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from leofs.storage.model import EXPECT_ABSENT, PutResult, WriteConflict
from leofs.storage.shared import SharedStore
from leofs.storage.store import ObjectStore
from leofs.storage.write_link import WriteLink, WriteService

#: a namespace: the engine gives namespaces no meaning
NS_OBJECT = 0


@asynccontextmanager
async def stores(tmp_path: Path) -> AsyncIterator[tuple[ObjectStore, SharedStore]]:
    owner = await ObjectStore.open(tmp_path / "data", reserve_bytes=0)
    service = WriteService(owner, tmp_path / "w.sock")
    await service.start()
    shared = SharedStore(tmp_path / "data", await WriteLink.connect(tmp_path / "w.sock"))
    try:
        yield owner, shared
    finally:
        await shared.close()
        await service.close()
        await owner.close()


def test_must_not_exist_in_one_batch(tmp_path: Path) -> None:
    """Many 'must not exist' writes of one key queued together: exactly one is applied."""

    async def main() -> None:
        async with stores(tmp_path) as (owner, shared):
            writes = [owner.put(NS_OBJECT, b"k", b"o%d" % i, expect=EXPECT_ABSENT) for i in range(8)]
            writes += [shared.put(NS_OBJECT, b"k", b"s%d" % i, expect=EXPECT_ABSENT) for i in range(8)]
            results = await asyncio.gather(*writes, return_exceptions=True)
            won = [r for r in results if isinstance(r, PutResult)]
            assert len(won) == 1 and won[0].applied
            assert all(isinstance(r, WriteConflict) for r in results if not isinstance(r, PutResult))
            assert owner.get(NS_OBJECT, b"k") == won[0].entry

    asyncio.run(main())


def test_expected_clock(tmp_path: Path) -> None:
    async def main() -> None:
        async with stores(tmp_path) as (owner, shared):
            first = await owner.put(NS_OBJECT, b"k", b"one")
            # two writers that both read version `first`: only one may replace it
            a, b = await asyncio.gather(shared.put(NS_OBJECT, b"k", b"a", expect=first.entry.clock),
                                        owner.put(NS_OBJECT, b"k", b"b", expect=first.entry.clock),
                                        return_exceptions=True)  # fmt: skip
            assert sorted(type(r).__name__ for r in (a, b)) == ["PutResult", "WriteConflict"]
            winner = a if isinstance(a, PutResult) else b
            assert isinstance(winner, PutResult) and winner.previous == first.entry
            with pytest.raises(WriteConflict):  # the key exists now
                await shared.put(NS_OBJECT, b"k", b"c", expect=EXPECT_ABSENT)
            # a conditional delete, then 'must not exist' holds again (a tombstone is no version)
            with pytest.raises(WriteConflict):
                await shared.delete(NS_OBJECT, b"k", expect=first.entry.clock)
            gone = await shared.delete(NS_OBJECT, b"k", expect=winner.entry.clock)
            assert gone.applied
            again = await owner.put(NS_OBJECT, b"k", b"d", expect=EXPECT_ABSENT)
            assert again.applied
            with pytest.raises(WriteConflict):  # a clock that never existed
                await owner.put(NS_OBJECT, b"k", b"e", expect=12345)
            assert await owner.read(owner.get(NS_OBJECT, b"k")) == b"d"  # type: ignore[arg-type]

    asyncio.run(main())
