"""The sharded LRU behind both cache tiers: byte capacity per shard, eviction order, replacement."""

from __future__ import annotations

import threading

from leofs.gateway.cache.lru import ShardedLRU


def test_evicts_the_least_recently_used_first() -> None:
    lru: ShardedLRU[str] = ShardedLRU(300, shards=1)
    for key in (b"a", b"b", b"c"):
        assert lru.put(key, key.decode(), 100) == []
    assert lru.get(b"a") == "a"  # a is now the most recently used
    assert lru.put(b"d", "d", 100) == [(b"b", "b")]
    assert lru.put(b"e", "e", 150) == [(b"c", "c"), (b"a", "a")]
    assert sorted(lru.keys()) == [b"d", b"e"] and lru.used == 250 and lru.evictions == 3


def test_replacing_a_key_hands_back_the_old_value_and_keeps_the_count_right() -> None:
    lru: ShardedLRU[str] = ShardedLRU(300, shards=1)
    lru.put(b"k", "old", 200)
    assert lru.put(b"k", "new", 250) == [(b"k", "old")]
    assert lru.get(b"k") == "new" and lru.used == 250 and len(lru) == 1 and lru.evictions == 0


def test_values_larger_than_a_shard_are_not_held() -> None:
    lru: ShardedLRU[str] = ShardedLRU(1000, shards=4)  # 250 bytes per shard
    assert not lru.fits(251) and lru.fits(250) and not lru.fits(0)
    assert lru.put(b"big", "x", 251) == [] and b"big" not in lru


def test_pop_if_removes_only_the_same_value() -> None:
    lru: ShardedLRU[object] = ShardedLRU(100, shards=1)
    first, second = object(), object()
    lru.put(b"k", first, 10)
    lru.put(b"k", second, 10)
    assert not lru.pop_if(b"k", first) and lru.pop_if(b"k", second) and b"k" not in lru and lru.used == 0


def test_shards_stay_within_their_capacity_under_threads() -> None:
    lru: ShardedLRU[int] = ShardedLRU(16 * 1000, shards=16)

    def work(n: int) -> None:
        for i in range(2000):
            key = f"{n}-{i}".encode()
            lru.put(key, i, 10 + i % 50)
            lru.get(key)
            if i % 7 == 0:
                lru.pop(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for shard in lru.shards:
        assert shard.used == sum(size for _, size in shard.items.values()) <= shard.capacity
