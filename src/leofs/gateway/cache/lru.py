"""A sharded LRU with a byte capacity: the index of both cache tiers.

A key goes to shard ``crc32(key) % shards``; each shard has its own lock, its own ordered map and
``capacity // shards`` bytes (as LeoFS's ``cache_workers``). Locks, not the event loop, guard the
shards because the disk tier updates its index from worker threads.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class _Shard(Generic[V]):
    __slots__ = ("capacity", "items", "lock", "used")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[bytes, tuple[V, int]] = OrderedDict()
        self.lock = threading.Lock()
        self.used = 0


class ShardedLRU(Generic[V]):
    """Least-recently-used map of ``key -> value`` whose values have a size in bytes."""

    def __init__(self, capacity: int, shards: int = 16) -> None:
        self.capacity = capacity
        self.shards: list[_Shard[V]] = [_Shard(capacity // shards) for _ in range(shards)]
        self.evictions = 0

    def _shard(self, key: bytes) -> _Shard[V]:
        return self.shards[zlib.crc32(key) % len(self.shards)]

    def fits(self, size: int) -> bool:
        """Whether a value of ``size`` bytes can be held at all (its shard's whole capacity)."""
        return 0 < size <= self.capacity // len(self.shards)

    def get(self, key: bytes) -> V | None:
        """The value, now the most recently used of its shard."""
        shard = self._shard(key)
        with shard.lock:
            found = shard.items.get(key)
            if found is None:
                return None
            shard.items.move_to_end(key)
            return found[0]

    def put(self, key: bytes, value: V, size: int) -> list[tuple[bytes, V]]:
        """Store ``value`` (replacing the key's old value); answers the values pushed out, oldest
        first, replaced one included, so the caller can release what they hold (files)."""
        shard = self._shard(key)
        out: list[tuple[bytes, V]] = []
        if not self.fits(size):
            return out
        with shard.lock:
            old = shard.items.pop(key, None)
            if old is not None:
                shard.used -= old[1]
                out.append((key, old[0]))
            while shard.items and shard.used + size > shard.capacity:
                evicted_key, (evicted, evicted_size) = shard.items.popitem(last=False)
                shard.used -= evicted_size
                self.evictions += 1
                out.append((evicted_key, evicted))
            shard.items[key] = (value, size)
            shard.used += size
        return out

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        shard = self._shard(key)
        with shard.lock:
            return key in shard.items

    def size_of(self, key: bytes) -> int:
        """The size stored with ``key`` (0 when absent)."""
        shard = self._shard(key)
        with shard.lock:
            found = shard.items.get(key)
            return 0 if found is None else found[1]

    def pop(self, key: bytes) -> V | None:
        """Remove the key; answers its value."""
        shard = self._shard(key)
        with shard.lock:
            found = shard.items.pop(key, None)
            if found is None:
                return None
            shard.used -= found[1]
            return found[0]

    def pop_if(self, key: bytes, value: V) -> bool:
        """Remove the key only while it still maps to ``value`` (the same object)."""
        shard = self._shard(key)
        with shard.lock:
            found = shard.items.get(key)
            if found is None or found[0] is not value:
                return False
            del shard.items[key]
            shard.used -= found[1]
            return True

    def keys(self) -> list[bytes]:
        """Every key, least recently used first within each shard."""
        out: list[bytes] = []
        for shard in self.shards:
            with shard.lock:
                out.extend(shard.items)
        return out

    def __len__(self) -> int:
        return sum(len(shard.items) for shard in self.shards)

    @property
    def used(self) -> int:
        """Bytes held, over all shards."""
        return sum(shard.used for shard in self.shards)
