"""A store as another process on the same host sees it: reads go straight to the files, writes
go through the :mod:`write link <leofs.storage.write_link>` to the process that owns the writer.

Reads need no coordination with the owner. The index is SQLite in WAL mode, so every lookup sees
the last committed state; a needle is in its log before its index row commits, so whatever a
lookup finds can be read. Log files are opened on first use and kept open. Compaction writes a new
generation and unlinks the old one: an open file stays readable until closed, and an entry that
names a generation which is already gone is looked up again (``StoreReads._locate``).
"""

from __future__ import annotations

from pathlib import Path

from leofs.storage.container import LogFile
from leofs.storage.index import Index
from leofs.storage.model import PutResult
from leofs.storage.needle import check_write
from leofs.storage.reads import StoreReads
from leofs.storage.write_link import WriteLink, WriteRequest


class SharedStore(StoreReads):
    """Read the store in ``path`` directly; write through ``link``."""

    def __init__(self, path: Path, link: WriteLink, *, verify_below: int = 1024 * 1024) -> None:
        self.path = path
        self._avs = path / "avs"
        self._reader = Index(path / "index.sqlite3")
        self._files: dict[tuple[int, int], LogFile] = {}
        self._link = link
        self.verify_below = verify_below

    def _log(self, container: int, generation: int) -> LogFile | None:
        log = self._files.get((container, generation))
        if log is not None:
            return log
        log = LogFile.open_readonly(self._avs, container, generation)
        if log is None:
            return None
        if any(c == container and g > generation for c, g in self._files):
            return log  # an entry read before a compaction: use it for this read only
        for k in [k for k in self._files if k[0] == container]:  # superseded by a compaction;
            del self._files[k]  # readers holding one keep it open
        self._files[(container, generation)] = log
        return log

    async def put(
        self,
        ns: int,
        key: bytes,
        data: bytes | memoryview,
        *,
        meta: bytes = b"",
        clock: int | None = None,
        timestamp: int | None = None,
        cindex: int = 0,
        cnumber: int = 0,
        csize: int = 0,
        md5: bytes | None = None,
        expect: int | None = None,
    ) -> PutResult:
        """Store ``data`` under (ns, key); returns once durable (see ``ObjectStore.put``)."""
        check_write(key, meta, md5)
        request = WriteRequest(0, False, ns, bytes(key), bytes(meta), clock, timestamp, cindex, cnumber, csize, md5,
                               expect)  # fmt: skip
        return await self._link.submit(request, data)

    async def delete(
        self, ns: int, key: bytes, *, clock: int | None = None, timestamp: int | None = None,
        expect: int | None = None,
    ) -> PutResult:
        """Write a tombstone for (ns, key) (see ``ObjectStore.delete``)."""
        check_write(key)
        return await self._link.submit(WriteRequest(0, True, ns, bytes(key), clock=clock, timestamp=timestamp,
                                                    expect=expect))

    async def close(self) -> None:
        await self._link.close()
        self._reader.close()
        for log in self._files.values():
            log.close()
        self._files.clear()
