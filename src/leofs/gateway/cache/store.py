"""The object cache: a RAM tier for small values, a disk tier for larger ones, both LRU.

Values are storage records and their data (an inline object body, a manifest, or a chunk), keyed
by their engine key. The cache knows nothing of validation: :mod:`leofs.gateway.cache.backend`
decides what may be served (inner mode: the storage node confirmed the clock; http mode: younger
than the TTL).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from leofs.config import GatewayConfig, parse_disk_cache, parse_size
from leofs.gateway.cache.disk import DiskTier
from leofs.gateway.cache.lru import ShardedLRU
from leofs.internal.messages import encoder, entry_decoder
from leofs.storage.model import Entry

#: the RAM capacity of a cluster gateway when ``cache_ram`` is "auto" (LeoFS's shipped default)
CLUSTER_RAM_DEFAULT = 256 * 1024 * 1024
#: bytes counted per RAM entry beyond its data (the record, the map's slots)
_OVERHEAD = 256
#: http mode: bytes counted per RAM entry for what a hit derives from it (``Cached.derived``: the
#: decoded record and the rendered headers, about 2 KiB plus five times the encoded metadata)
_DERIVED = 2048
#: values handed to a worker thread rather than read or written on the event loop
_THREAD_ABOVE = 256 * 1024

_STRIPES = 4096

MEM = "mem"
DISK = "disk"


@dataclass(slots=True)
class Cached:
    """A cached record: the storage entry, its data, when it was stored, and the tier it came from.

    ``derived``: what the gateway derived from this version to answer it (http mode: the decoded
    record and the rendered headers of a plain GET, :mod:`leofs.gateway.handlers.hit`), kept with it
    so that a hit need not derive it again; it is replaced with the entry when the version changes."""

    entry: Entry
    data: bytes
    stored: float  # time.monotonic()
    tier: str
    derived: object = None


@dataclass(slots=True)
class TierStats:
    hits: int = 0
    misses: int = 0


class ObjectCache:
    """Both tiers, with per-tier statistics. ``ram`` and ``disk`` may be None (tier off)."""

    def __init__(
        self,
        ram: ShardedLRU[Cached] | None,
        disk: DiskTier | None,
        *,
        ram_threshold: int,
        max_object: int,
        mode: str = "inner",
        http_ttl: float = 300.0,
        http_prefixes: tuple[str, ...] = (),
        http_content_types: tuple[str, ...] = (),
    ) -> None:
        self.ram = ram
        self.disk = disk
        self.ram_threshold = ram_threshold
        self.max_object = max_object
        self.mode = mode
        self.http_ttl = http_ttl
        self.http_prefixes = http_prefixes
        self.http_content_types = http_content_types
        self.stats = {MEM: TierStats(), DISK: TierStats()}
        self.misses = 0
        self.bytes_saved = 0  # body bytes served from the cache instead of fetched
        # bumped by every drop of a key of the stripe: a value fetched before a drop of its key is
        # not stored after it (striped, so that writes of other keys do not stop fills)
        self._epochs = [0] * _STRIPES

    def tier_for(self, size: int) -> str | None:
        """Where a value of ``size`` bytes goes, or None (too large, or its tier is off)."""
        if size > self.max_object:
            return None
        if size < self.ram_threshold:
            return MEM if self.ram is not None and self.ram.fits(size + _OVERHEAD) else None
        return DISK if self.disk is not None and self.disk.fits(size) else None

    def epoch_of(self, key: bytes) -> int:
        """The drop count of ``key``'s stripe: take it before a fetch, pass it to :meth:`put`."""
        return self._epochs[zlib.crc32(key) % _STRIPES]

    async def get(self, key: bytes) -> Cached | None:
        """The cached value of ``key`` from either tier, now most recently used; counts a tier's
        miss (a hit is counted when the value is served: :meth:`served`)."""
        if self.ram is not None:
            found = self.ram.get(key)
            if found is not None:
                return found
            self.stats[MEM].misses += 1
        if self.disk is not None:
            disk = self.disk
            got = None
            if key in disk.lru:
                got = await asyncio.to_thread(disk.read, key) if disk.big(key) else disk.read(key)
            if got is not None:
                header, body = got
                return Cached(entry_decoder.decode(header.extra), body, time.monotonic(), DISK)
            self.stats[DISK].misses += 1
        return None

    def served(self, tier: str, size: int) -> None:
        """Count a hit: ``size`` body bytes served from ``tier``."""
        self.stats[tier].hits += 1
        self.bytes_saved += size

    def missed(self) -> None:
        """Count a request the cache could not answer (absent, or replaced meanwhile)."""
        self.misses += 1

    def peek(self, key: bytes) -> bool:
        """Whether ``key`` is cached (no statistics, no reordering)."""
        return (self.ram is not None and key in self.ram) or (self.disk is not None and key in self.disk.lru)

    async def put(self, key: bytes, entry: Entry, data: bytes, *, epoch: int) -> None:
        """Cache ``data`` as the value of ``key`` at version ``entry``, unless a drop came since
        ``epoch`` (the value may be older than what the drop made way for)."""
        if epoch != self.epoch_of(key):
            return
        tier = self.tier_for(len(data))
        if tier == MEM and self.ram is not None:
            if self.disk is not None:
                self.disk.drop(key)
            derived = _DERIVED + 5 * len(entry.meta) if self.mode == "http" else 0
            self.ram.put(key, Cached(entry, data, time.monotonic(), MEM), len(data) + _OVERHEAD + derived)
        elif tier == DISK and self.disk is not None:
            if self.ram is not None:
                self.ram.pop(key)
            disk = self.disk
            etag = entry.md5.hex()
            args = (key, entry.clock, etag, data, encoder.encode(entry))
            if len(data) > _THREAD_ABOVE:
                await asyncio.to_thread(disk.write, *args)
            else:
                disk.write(*args)
            if epoch != self.epoch_of(key):  # dropped while the file was written
                disk.drop(key)

    def drop(self, key: bytes) -> None:
        """Forget ``key`` in both tiers."""
        self._epochs[zlib.crc32(key) % _STRIPES] += 1
        if self.ram is not None:
            self.ram.pop(key)
        if self.disk is not None:
            self.disk.drop(key)

    def http_cacheable(self, path: str, content_type: str | None) -> bool:
        """http mode: whether ``bucket/key`` with this content type may be cached."""
        if self.http_prefixes and not any(path.startswith(p) for p in self.http_prefixes):
            return False
        if self.http_content_types:
            base = (content_type or "").split(";", 1)[0].strip().lower()
            return base in self.http_content_types
        return True


def build_cache(cfg: GatewayConfig, *, default_ram: int, slot: str = "") -> ObjectCache | None:
    """The cache ``cfg`` asks for (None when both capacities are 0). ``default_ram``: the role's
    RAM capacity for ``cache_ram = "auto"``; ``slot``: a sub-directory of the disk tier, one per
    process sharing the configuration (the embedded server's workers)."""
    ram_bytes = default_ram if cfg.cache_ram == "auto" else parse_size(cfg.cache_ram)
    disk_dir, disk_bytes = parse_disk_cache(cfg.cache_disk) if cfg.cache_disk else ("", 0)
    if ram_bytes <= 0 and disk_bytes <= 0:
        return None
    ram: ShardedLRU[Cached] | None = ShardedLRU(ram_bytes, cfg.cache_shards) if ram_bytes > 0 else None
    disk = None
    if disk_bytes > 0:
        directory = Path(disk_dir) / slot if slot else Path(disk_dir)
        disk = DiskTier(directory, disk_bytes, cfg.cache_shards)
    return ObjectCache(
        ram,
        disk,
        ram_threshold=cfg.cache_ram_threshold,
        max_object=cfg.cache_max_object,
        mode=cfg.cache_mode,
        http_ttl=cfg.cache_http_ttl,
        http_prefixes=tuple(p.strip().lstrip("/") for p in cfg.cache_http_prefixes.split(",") if p.strip()),
        http_content_types=tuple(t.strip().lower() for t in cfg.cache_http_content_types.split(",") if t.strip()),
    )
