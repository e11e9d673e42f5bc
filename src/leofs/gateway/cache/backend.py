"""The cache in front of a :class:`~leofs.gateway.backend.Backend`: handlers see a backend, and
the cache saves the bodies it can.

- inner mode: a cached object record (inline body or manifest) is served only after the storage
  node confirmed its clock (``fetch_unless``: "match" comes back without a body), so no gateway
  serves bytes another gateway already replaced. Chunks are immutable (a chunk key holds its blob
  id): a cached chunk needs no validation beyond its parent record's.
- http mode: a cached public object is served without asking storage while younger than the TTL
  (the client's ``Cache-Control: no-cache`` skips the cache and refreshes it).

Every write or delete of an object record through this gateway drops its entry; a read that
started before the drop does not store what it fetched (``ObjectCache.epoch_of``). Concurrent misses
of one key fetch it once (:class:`SingleFlight`); a request that finds a fetch of its key already
in progress waits for it, then validates what it stored like any hit (the fetch began before the
request did, and may predate a write the request must see).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import BinaryIO

import msgspec

from leofs.accounts import Grant, canned_grants
from leofs.gateway.access import permitted
from leofs.gateway.backend import Backend, Replaced
from leofs.gateway.cache.flight import SingleFlight
from leofs.gateway.cache.lru import ShardedLRU
from leofs.gateway.cache.note import MISS, CacheNote, current_note
from leofs.gateway.cache.store import Cached, ObjectCache
from leofs.gateway.keys import NS_CHUNK, NS_OBJECT
from leofs.gateway.records import ObjectMeta, object_meta_decoder
from leofs.storage.model import CommonPrefix, Entry

Fetched = tuple[Entry, bytes]


class CachingBackend:
    """A :class:`Backend` that answers object reads from an :class:`ObjectCache` when it may."""

    def __init__(self, inner: Backend, cache: ObjectCache) -> None:
        self.inner = inner
        self.cache = cache
        self.local = inner.local
        self.flight: SingleFlight[Fetched | None] = SingleFlight()
        self.chunk_flight: SingleFlight[bytes] = SingleFlight()
        # the entries of cached chunks, so a chunk hit needs no head round trip (a few hundred bytes each)
        self.chunk_entries: ShardedLRU[Entry] = ShardedLRU(8 * 1024 * 1024, 16)

    # -- writes: drop the entry; small records are written through -----------------------------
    async def put(
        self,
        ns: int,
        key: bytes,
        data: bytes | memoryview,
        *,
        meta: bytes = b"",
        cindex: int = 0,
        cnumber: int = 0,
        csize: int = 0,
        md5: bytes | None = None,
        clock: int | None = None,
        timestamp: int | None = None,
        expect: int | None = None,
    ) -> tuple[Entry, Replaced | None]:
        try:
            written = await self.inner.put(
                ns,
                key,
                data,
                meta=meta,
                cindex=cindex,
                cnumber=cnumber,
                csize=csize,
                md5=md5,
                clock=clock,
                timestamp=timestamp,
                expect=expect,
            )
        finally:  # also when it failed: it may have landed on some replicas
            if ns == NS_OBJECT:
                self.cache.drop(key)
        entry = written[0]
        # write-through of small records (LeoFS caches small objects on PUT), inner mode only: a
        # later write that overtook this one is caught by the validation of the clock
        if ns == NS_OBJECT and self.cache.mode == "inner" and len(data) < self.cache.ram_threshold:
            await self.cache.put(key, entry, bytes(data), epoch=self.cache.epoch_of(key))
        return written

    async def delete(self, ns: int, key: bytes, *, expect: int | None = None) -> Replaced | None:
        try:
            return await self.inner.delete(ns, key, expect=expect)
        finally:
            if ns == NS_OBJECT:
                self.cache.drop(key)
            elif ns == NS_CHUNK:
                self.cache.drop(key)
                self.chunk_entries.pop(key)

    def _hit(self, note: CacheNote, tier: str, served: int) -> None:
        note.record(f"hit:{tier}")
        self.cache.served(tier, served)

    def _miss(self, note: CacheNote) -> None:
        note.record(MISS)
        self.cache.missed()

    # -- object records -----------------------------------------------------------------------------
    async def fetch(self, ns: int, key: bytes) -> Fetched | None:
        if ns != NS_OBJECT:
            return await self.inner.fetch(ns, key)
        note = current_note()
        if self.cache.mode == "http":
            return await self._fetch_http(key, note)
        cached = await self.cache.get(key)
        if cached is None and await self.flight.wait(key):
            cached = await self.cache.get(key)  # what the fetch in progress stored
        if cached is None:
            self._miss(note)
            got = await self.flight.run(key, lambda: self._fetch_fresh(key))
            self._allow_chunks(note, got)
            return got
        epoch = self.cache.epoch_of(key)
        got_or_match = await self.inner.fetch_unless(ns, key, cached.entry.clock)
        if got_or_match is None:
            self.cache.drop(key)
            return None
        entry, data = got_or_match
        if data is None and entry.size == len(cached.data):  # the node confirmed this version
            self._hit(note, cached.tier, len(cached.data))
            got = (entry, cached.data)
        else:
            self._miss(note)
            got = (entry, data) if data is not None else await self.inner.fetch(ns, key)
            if got is not None:
                await self._store(key, got, epoch)
        self._allow_chunks(note, got)
        return got

    async def _fetch_fresh(self, key: bytes) -> Fetched | None:
        epoch = self.cache.epoch_of(key)
        got = await self.inner.fetch(NS_OBJECT, key)
        if got is not None:
            await self._store(key, got, epoch)
        return got

    async def _store(self, key: bytes, got: Fetched, epoch: int) -> None:
        entry, data = got
        if entry.tombstone or self._meta(entry) is None:
            return
        if self.cache.mode == "http" and not self._http_cacheable(key, entry):
            self.cache.drop(key)  # no longer public (or now chunked): an older copy must not be served
            return
        await self.cache.put(key, entry, data, epoch=epoch)

    def _allow_chunks(self, note: CacheNote, got: Fetched | None) -> None:
        if got is None or got[0].cnumber == 0:
            return
        meta = self._meta(got[0])
        note.chunks = meta is not None and meta.size <= self.cache.max_object and self.cache.mode == "inner"

    @staticmethod
    def _meta(entry: Entry) -> ObjectMeta | None:
        try:
            return object_meta_decoder.decode(entry.meta)
        except msgspec.DecodeError:
            return None

    # -- http mode ------------------------------------------------------------------------------------
    def _http_cacheable(self, key: bytes, entry: Entry) -> bool:
        """Inline objects anyone may read, under a configured prefix, of a configured content type."""
        meta = self._meta(entry)
        if meta is None or entry.cnumber > 0:
            return False
        grants = canned_grants(meta.acl, meta.owner) if meta.grants is None else [Grant(*g) for g in meta.grants]
        if not permitted(grants, None, "READ"):
            return False
        return self.cache.http_cacheable(key.decode(errors="replace"), meta.content_type)

    async def _fetch_http(self, key: bytes, note: CacheNote) -> Fetched | None:
        ttl = self.cache.http_ttl
        if not note.no_cache:
            cached = await self.cache.get(key)
            if cached is not None:
                age = time.monotonic() - cached.stored
                if age < ttl:
                    note.max_age, note.age, note.hit = ttl, age, cached
                    self._hit(note, cached.tier, len(cached.data))
                    return cached.entry, cached.data
                self.cache.drop(key)  # expired
        self._miss(note)
        # within the TTL http mode serves what it has: a shared fetch is as fresh as that
        got = await self.flight.run(key, lambda: self._fetch_fresh(key))
        if got is not None and self.cache.peek(key):
            note.max_age, note.age = ttl, 0.0
        return got

    # -- chunks and local reads ---------------------------------------------------------------------
    async def head(self, ns: int, key: bytes, *, hint: bool = False) -> Entry | None:
        if ns == NS_CHUNK and not self.local:
            entry = self.chunk_entries.get(key)
            if entry is not None and self.cache.peek(key):
                return entry
        return await self.inner.head(ns, key, hint=hint)

    async def _cached(self, entry: Entry) -> Cached | None:
        if not self.cache.peek(entry.key):
            return None
        cached = await self.cache.get(entry.key)
        if cached is None or cached.entry.clock != entry.clock or len(cached.data) != entry.size:
            return None
        return cached

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes:
        end = entry.size if length is None else min(entry.size, start + length)
        cacheable = entry.ns == NS_CHUNK or (entry.ns == NS_OBJECT and self.local)
        if not cacheable or self.cache.mode != "inner":
            return await self.inner.read(entry, start, length)
        note = current_note()
        cached = await self._cached(entry)
        if cached is not None:
            self._hit(note, cached.tier, end - start)
            return cached.data[start:end]
        whole = start == 0 and end == entry.size
        allowed = note.chunks if entry.ns == NS_CHUNK else entry.size <= self.cache.max_object
        if not allowed or self.cache.tier_for(entry.size) is None or (entry.ns == NS_CHUNK and not whole):
            return await self.inner.read(entry, start, length)
        self._miss(note)
        # a chunk's bytes never change (its key names its blob): sharing one read is always right
        data = await self.chunk_flight.run(entry.key + b"@%d" % entry.clock, lambda: self._read_whole(entry))
        return data[start:end]

    async def _read_whole(self, entry: Entry) -> bytes:
        epoch = self.cache.epoch_of(entry.key)
        data = await self.inner.read(entry)
        if len(data) == entry.size:
            if entry.ns == NS_CHUNK:  # immutable: what was read is right even if the key was dropped since
                epoch = self.cache.epoch_of(entry.key)
            await self.cache.put(entry.key, entry, data, epoch=epoch)
            if entry.ns == NS_CHUNK:
                self.chunk_entries.put(entry.key, entry, 512 + len(entry.key))
        return data

    async def stream(self, entry: Entry, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        cached = await self._cached(entry) if self.cache.mode == "inner" else None
        if cached is not None:
            end = entry.size if length is None else min(entry.size, start + length)
            self._hit(current_note(), cached.tier, end - start)
            yield cached.data[start:end]
            return
        async for piece in self.inner.stream(entry, start, length):
            yield piece

    async def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int] | None:
        if self.cache.mode == "inner":
            if self.cache.peek(entry.key):
                return None  # served from the cache (read / stream)
            if not self.local and self._would_cache(entry):
                return None  # read (and cached) through ``read``
        return await self.inner.open_data(entry)

    def _would_cache(self, entry: Entry) -> bool:
        """Whether a whole read of this chunk of a remote backend would be stored in the cache."""
        return entry.ns == NS_CHUNK and current_note().chunks and self.cache.tier_for(entry.size) is not None

    # -- passed through -------------------------------------------------------------------------------
    async def fetch_unless(self, ns: int, key: bytes, clock: int) -> tuple[Entry, bytes | None] | None:
        return await self.inner.fetch_unless(ns, key, clock)

    async def scan(
        self, ns: int, prefix: bytes, *, start_after: bytes = b"", limit: int = 1000, delimiter: bytes | None = None
    ) -> list[Entry | CommonPrefix]:
        return await self.inner.scan(ns, prefix, start_after=start_after, limit=limit, delimiter=delimiter)
