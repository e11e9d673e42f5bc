"""ObjectCache: which tier a value goes to, both capacities 0 = no cache, and a value fetched
before a drop of its key is not stored after it (the race of a read with a write)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leofs.config import GatewayConfig, parse_size
from leofs.gateway.cache.store import CLUSTER_RAM_DEFAULT, DISK, MEM, ObjectCache, build_cache
from leofs.storage.model import Entry


def entry(key: bytes, clock: int, size: int) -> Entry:
    return Entry(ns=0, key=key, clock=clock, timestamp=clock, tombstone=False, size=size, md5=b"\0" * 16, meta=b"",
                 cindex=0, cnumber=0, csize=0, container=0, generation=0, data_offset=0, crc=0)  # fmt: skip


def cache(tmp_path: Path) -> ObjectCache:
    cfg = GatewayConfig(cache_ram="1MiB", cache_disk=f"{tmp_path / 'd'}:8MiB", cache_ram_threshold=1000,
                        cache_max_object=2 * 1024 * 1024, cache_shards=1)  # fmt: skip
    built = build_cache(cfg, default_ram=0)
    assert built is not None
    return built


def test_sizes_choose_the_tier(tmp_path: Path) -> None:
    c = cache(tmp_path)
    assert c.tier_for(999) == MEM and c.tier_for(1000) == DISK and c.tier_for(2 * 1024 * 1024 + 1) is None

    async def main() -> None:
        for key, size in ((b"b/small", 10), (b"b/large", 5000)):
            await c.put(key, entry(key, 1, size), b"x" * size, epoch=c.epoch_of(key))
        small, large = await c.get(b"b/small"), await c.get(b"b/large")
        assert small is not None and small.tier == MEM and small.data == b"x" * 10
        assert large is not None and large.tier == DISK and large.entry.clock == 1 and large.data == b"x" * 5000
        assert await c.get(b"b/none") is None
        assert (c.stats[MEM].misses, c.stats[DISK].misses) == (2, 1)  # lookups each tier did not answer

    asyncio.run(main())


def test_a_value_fetched_before_a_drop_is_not_stored(tmp_path: Path) -> None:
    c = cache(tmp_path)

    async def main() -> None:
        for key, size in ((b"b/m", 10), (b"b/d", 5000)):
            epoch = c.epoch_of(key)  # a read begins
            c.drop(key)  # a write through this gateway ends
            await c.put(key, entry(key, 1, size), b"o" * size, epoch=epoch)  # the read ends: old bytes
            assert await c.get(key) is None
            await c.put(key, entry(key, 2, size), b"n" * size, epoch=c.epoch_of(key))
            got = await c.get(key)
            assert got is not None and got.entry.clock == 2

    asyncio.run(main())


def test_both_capacities_zero_is_no_cache_and_auto_is_the_roles_default() -> None:
    assert build_cache(GatewayConfig(cache_ram="0"), default_ram=CLUSTER_RAM_DEFAULT) is None
    assert build_cache(GatewayConfig(), default_ram=0) is None  # the embedded server's default
    on = build_cache(GatewayConfig(), default_ram=CLUSTER_RAM_DEFAULT)
    assert on is not None and on.ram is not None and on.ram.capacity == 256 * 1024 * 1024 and on.disk is None
    assert parse_size("256MiB") == parse_size("256M") == 256 << 20 and parse_size("4096") == 4096
