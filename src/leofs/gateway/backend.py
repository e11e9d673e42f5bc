"""The gateway's view of the storage layer.

The gateway talks to storage only through :class:`Backend`. The embedded server plugs the local
:class:`~leofs.storage.store.ObjectStore` in directly; a cluster gateway plugs in a client that
routes each key through the RING to its storage nodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO, NamedTuple, Protocol

from leofs.s3.errors import S3Error
from leofs.storage.model import CommonPrefix, DiskFull, Entry, PutResult, StaleEntry, WriteConflict

__all__ = ["Backend", "Replaced", "WriteConflict"]

STREAM_PIECE = 1024 * 1024


class Replaced(NamedTuple):
    """The version a write replaced: its entry and, when the backend sent it along (a remote
    coordinator does for parent records), its data."""

    entry: Entry
    data: bytes | None = None


class Backend(Protocol):
    """Key-value operations the gateway needs; ``head`` hides tombstones.

    ``local`` says whether all data is on this host (then ``open_data`` gives a file for sendfile;
    a cluster's ``open_data`` may too, for the replicas that run on this host).
    ``head(..., hint=True)`` may answer from one replica without comparing: for lookups whose
    answer only guides clean-up (a replaced version's chunks), never for what a client sees.
    """

    local: bool

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
        """Store a record; answers the entry written and the version it replaced, when known (None
        for a new key or a write not applied; a cluster knows it when the coordinator holds a
        replica). ``expect`` makes it a compare-and-set where writes are serialised (0: no live
        version; else the clock of the live version): :class:`WriteConflict` when it does not hold."""
        ...

    async def delete(self, ns: int, key: bytes, *, expect: int | None = None) -> Replaced | None:
        """Write a tombstone; answers the version it replaced, when known (as for ``put``)."""
        ...

    async def head(self, ns: int, key: bytes, *, hint: bool = False) -> Entry | None: ...

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes: ...

    async def fetch(self, ns: int, key: bytes) -> tuple[Entry, bytes] | None:
        """A record and its whole data in one go (records are small: inline bodies, manifests)."""
        ...

    async def fetch_unless(self, ns: int, key: bytes, clock: int) -> tuple[Entry, bytes | None] | None:
        """As :meth:`fetch`, but when the stored version has ``clock`` its data is not sent (None):
        the cache's validation of a hit ("match")."""
        ...

    def stream(self, entry: Entry, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...

    async def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int] | None:
        """(file, data offset, size) of the entry's data on this host, for sendfile; None when
        it is not here (then ``read``/``stream``). The caller closes the file, and reads it only at
        explicit offsets (its file position may be shared)."""
        ...

    async def scan(
        self,
        ns: int,
        prefix: bytes,
        *,
        start_after: bytes = b"",
        limit: int = 1000,
        delimiter: bytes | None = None,
    ) -> list[Entry | CommonPrefix]: ...


async def scan_entries(backend: Backend, ns: int, prefix: bytes, page: int = 1000) -> AsyncIterator[Entry]:
    """Every live entry of ``ns`` under ``prefix``, in key order, fetched a page at a time."""
    start = b""
    while True:
        batch = await backend.scan(ns, prefix, start_after=start, limit=page)
        for item in batch:
            if isinstance(item, Entry):
                start = item.key
                yield item
        if len(batch) < page:
            return


class LocalStore(Protocol):
    """A store on this host: the ObjectStore that owns the writer, or a SharedStore in a worker."""

    async def put(self, ns: int, key: bytes, data: bytes | memoryview, *, meta: bytes = b"",
                  clock: int | None = None, timestamp: int | None = None, cindex: int = 0, cnumber: int = 0,
                  csize: int = 0, md5: bytes | None = None, expect: int | None = None) -> PutResult: ...  # fmt: skip

    async def delete(self, ns: int, key: bytes, *, clock: int | None = None,
                     timestamp: int | None = None, expect: int | None = None) -> PutResult: ...  # fmt: skip

    def get(self, ns: int, key: bytes) -> Entry | None: ...

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes: ...

    def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int]: ...

    def scan(self, ns: int, prefix: bytes = b"", *, start_after: bytes = b"", limit: int = 1000,
             delimiter: bytes | None = None,
             include_tombstones: bool = False) -> list[Entry | CommonPrefix]: ...  # fmt: skip


class EmbeddedBackend:
    """A store on this host, called in-process (the embedded default, N=W=R=D=1)."""

    local = True

    def __init__(self, store: LocalStore) -> None:
        self.store = store

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
            result = await self.store.put(
                ns, key, data, meta=meta, cindex=cindex, cnumber=cnumber, csize=csize, md5=md5,
                clock=clock, timestamp=timestamp, expect=expect,
            )
        except DiskFull:
            raise S3Error("InsufficientStorage") from None
        return result.entry, Replaced(result.previous) if result.applied and result.previous else None

    async def delete(self, ns: int, key: bytes, *, expect: int | None = None) -> Replaced | None:
        result = await self.store.delete(ns, key, expect=expect)
        return Replaced(result.previous) if result.applied and result.previous else None

    async def head(self, ns: int, key: bytes, *, hint: bool = False) -> Entry | None:
        entry = self.store.get(ns, key)
        if entry is None or entry.tombstone:
            return None
        return entry

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes:
        try:
            return await self.store.read(entry, start, length)
        except StaleEntry:
            raise _changed() from None

    async def fetch(self, ns: int, key: bytes) -> tuple[Entry, bytes] | None:
        entry = await self.head(ns, key)
        return None if entry is None else (entry, await self.read(entry))

    async def fetch_unless(self, ns: int, key: bytes, clock: int) -> tuple[Entry, bytes | None] | None:
        entry = await self.head(ns, key)  # the local index: cheap
        if entry is None:
            return None
        return entry, None if entry.clock == clock else await self.read(entry)

    async def stream(self, entry: Entry, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        end = entry.size if length is None else min(entry.size, start + length)
        for offset in range(start, end, STREAM_PIECE):
            yield await self.read(entry, offset, min(STREAM_PIECE, end - offset))

    async def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int] | None:
        try:
            return self.store.open_data(entry)
        except StaleEntry:
            raise _changed() from None

    async def scan(
        self,
        ns: int,
        prefix: bytes,
        *,
        start_after: bytes = b"",
        limit: int = 1000,
        delimiter: bytes | None = None,
    ) -> list[Entry | CommonPrefix]:
        return self.store.scan(ns, prefix, start_after=start_after, limit=limit, delimiter=delimiter)


class VersionGone(S3Error):
    """The version being read is no longer stored anywhere reachable: it was overwritten (and, on a
    single node, compacted away) meanwhile. Readers look the object up again; clients retry a 503."""

    def __init__(self) -> None:
        super().__init__("ServiceUnavailable", "The object changed while it was being read; please retry.")


def _changed() -> VersionGone:
    return VersionGone()
