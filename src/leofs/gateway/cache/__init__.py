"""The gateway's object cache (LeoFS's leo_cache): a RAM tier and a disk tier, both sharded LRU
with a byte capacity; inner mode (every hit validated with the storage node) or http mode (a TTL
cache of public objects). ``store`` holds the tiers, ``backend`` puts them in front of a
:class:`~leofs.gateway.backend.Backend`, ``note`` says what the cache did for a request."""

from leofs.gateway.cache.backend import CachingBackend
from leofs.gateway.cache.note import CACHE_NOTE, CacheNote
from leofs.gateway.cache.store import CLUSTER_RAM_DEFAULT, ObjectCache, build_cache

__all__ = ["CACHE_NOTE", "CLUSTER_RAM_DEFAULT", "CacheNote", "CachingBackend", "ObjectCache", "build_cache"]
