"""Compaction under concurrent writes: every put, overwrite and delete made while containers are being
compacted reads back afterwards (bytes and metadata), and again after a restart."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

from leofs.storage.store import ObjectStore

WRITERS = 6


def test_writes_made_during_compaction_read_back_after_it_and_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        s = await ObjectStore.open(tmp_path, containers=2, sync=False, tombstone_grace=0.0, reserve_bytes=0)
        rnd = random.Random(7)
        # data to compact: overwrites and deletes leave garbage behind
        for i in range(3000):
            await s.put(0, b"old%04d" % i, rnd.randbytes(rnd.randrange(500, 3000)), meta=b"m-old-%d" % i)
        for i in range(0, 3000, 2):
            await s.put(0, b"old%04d" % i, b"v2-%d" % i, meta=b"m-v2-%d" % i)
        for i in range(1, 3000, 4):
            await s.delete(0, b"old%04d" % i)
        # what each key must hold at the end: (data, meta), or None when deleted
        expect: dict[bytes, tuple[bytes, bytes] | None] = {}
        for i in range(3000):
            e = s.get(0, b"old%04d" % i)
            expect[b"old%04d" % i] = None if e is None or e.tombstone else (await s.read(e), e.meta)
        during = 0  # writes that completed while the compaction was running
        task = asyncio.create_task(s.compact())

        async def writer(w: int) -> None:
            nonlocal during
            n = 0
            while not task.done() or n < 20:
                # new keys, and overwrites of old ones (each writer its own: one writer per key keeps
                # the expected outcome certain)
                key = b"new-%d-%d" % (w, n) if n % 3 else b"old%04d" % (rnd.randrange(0, 3000, WRITERS) + w)
                if n % 7 == 6:
                    await s.delete(0, key)
                    expect[key] = None
                else:
                    data = hashlib.sha256(key + b"%d" % n).digest() * rnd.randrange(1, 40)
                    meta = b"meta-%d-%d" % (w, n)
                    await s.put(0, key, data, meta=meta)
                    expect[key] = (data, meta)
                if s.compaction_status().state == "running":
                    during += 1
                n += 1

        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        status = await task
        assert status.done == [0, 1] and status.reclaimed_bytes > 0
        assert during > 0, "no write happened while the compaction ran"
        print(f"{during} writes during the compaction, {len(expect) - 3000} new keys")

        async def check(store: ObjectStore) -> None:
            for key, want in expect.items():
                e = store.get(0, key)
                if want is None:
                    assert e is None or e.tombstone, key
                    continue
                assert e is not None and not e.tombstone, key
                assert (await store.read(e), e.meta) == want, key
                assert e.md5 == hashlib.md5(want[0]).digest(), key
            assert await store.scrub() == []

        await check(s)
        await s.close()
        s = await ObjectStore.open(tmp_path, containers=2, reserve_bytes=0)
        await check(s)
        await s.close()

    asyncio.run(main())
