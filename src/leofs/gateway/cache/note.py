"""What the cache did for one request: the access log's cache state, the client's ``no-cache``,
and, in http mode, the Cache-Control and Age of the answer.

The gateway sets a fresh :class:`CacheNote` in :data:`CACHE_NOTE` for each request; tasks a
handler starts (chunk read-ahead) copy the context and so share the same note.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from leofs.gateway.cache.store import Cached

MISS = "miss"


@dataclass(slots=True)
class CacheNote:
    """The cache's part in one request."""

    no_cache: bool = False  # the client sent Cache-Control: no-cache
    state: str = ""  # "" (the cache was not asked), "miss", "hit:mem", "hit:disk"
    chunks: bool = False  # the chunks of the object being read may be cached (its size allows)
    max_age: float | None = None  # http mode: the answer may be cached downstream this long
    age: float = 0.0  # http mode: seconds since the cached copy was fetched
    hit: Cached | None = None  # http mode: the cached copy the last object fetch answered with

    def record(self, state: str) -> None:
        """Note a lookup: one miss among several lookups (chunks) makes the request a miss."""
        if self.state != MISS:
            self.state = state


CACHE_NOTE: ContextVar[CacheNote | None] = ContextVar("leofs_cache_note", default=None)


def current_note() -> CacheNote:
    """The request's note (a throwaway one outside a request: maintenance tasks)."""
    note = CACHE_NOTE.get()
    return note if note is not None else CacheNote()
