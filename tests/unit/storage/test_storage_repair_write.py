"""The engine's repair write (``ObjectStore.repair_put``): a healthy copy of the *same* version replaces
a damaged needle; any other version is left alone. And ``entry_at`` finds a needle's entry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leofs.storage.store import ObjectStore


def test_repair_put_rewrites_only_the_same_version(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, reserve_bytes=0)
        try:
            first = (await store.put(0, b"b/k", b"hello", clock=100)).entry
            assert (await store.put(0, b"b/k", b"hello", clock=100)).applied is False  # an equal clock: no
            repaired = await store.repair_put(first, b"hello")
            assert repaired.applied and repaired.entry.clock == 100
            assert (repaired.entry.container, repaired.entry.data_offset) != (first.container, first.data_offset)
            assert await store.read(store.get(0, b"b/k")) == b"hello"  # type: ignore[arg-type]
            # another version (an MD5 that differs) or an older one is never written by a repair
            other = await store.put(0, b"b/x", b"abc", clock=200)
            changed = type(other.entry)(**{**{f: getattr(other.entry, f) for f in other.entry.__struct_fields__},
                                           "md5": b"\0" * 16})  # fmt: skip
            assert (await store.repair_put(changed, b"zzz")).applied is False
            older = type(other.entry)(**{**{f: getattr(other.entry, f) for f in other.entry.__struct_fields__},
                                         "clock": 150})  # fmt: skip
            assert (await store.repair_put(older, b"abc")).applied is False
            assert store.get(0, b"b/x") == other.entry
        finally:
            await store.close()

    asyncio.run(main())


def test_entry_at_finds_the_entry_of_a_needle(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, reserve_bytes=0)
        try:
            e = (await store.put(0, b"b/key", b"data" * 10, meta=b"m" * 7, clock=5)).entry
            scrubbed = [(d.container, d.generation) for d in await store.scrub()]
            assert scrubbed == []
            from leofs.storage.needle import HEADER_SIZE

            start = e.data_offset - HEADER_SIZE - len(e.key) - len(e.meta)
            assert store.entry_at(e.container, e.generation, start) == e
            assert store.entry_at(e.container, e.generation, start + 8) is None
        finally:
            await store.close()

    asyncio.run(main())
