"""Reading a store: index lookups, needle data and ordered scans.

Shared by the process that owns the writer (:class:`~leofs.storage.store.ObjectStore`) and by
processes that only read the same data directory (:class:`~leofs.storage.shared.SharedStore`):
both resolve an index entry to an open log file, and only that step differs between them.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from typing import BinaryIO

from leofs.storage.container import LogFile
from leofs.storage.index import Index
from leofs.storage.model import CommonPrefix, CorruptData, Entry, StaleEntry
from leofs.storage.needle import pread_exact

INLINE_READ = 256 * 1024  # reads up to this size run on the loop; bigger ones in a thread


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes([p[-1] + 1])


class StoreReads:
    """The read half of a store. Subclasses set ``_reader`` and ``verify_below`` and say which open
    log holds a (container, generation)."""

    _reader: Index
    verify_below: int

    def _log(self, container: int, generation: int) -> LogFile | None:
        """The open log of this generation, or None when it no longer exists (compacted)."""
        raise NotImplementedError

    def get(self, ns: int, key: bytes) -> Entry | None:
        """The index entry for (ns, key), tombstones included (check ``entry.tombstone``)."""
        return self._reader.get(ns, key)

    def _locate(self, entry: Entry) -> tuple[LogFile, int, Entry]:
        log = self._log(entry.container, entry.generation)
        if log is not None:
            return log, entry.data_offset, entry
        # Compacted since the entry was read: the same needle (same clock) lives in the new log.
        cur = self.get(entry.ns, entry.key)
        if cur is not None and cur.clock == entry.clock:
            log = self._log(cur.container, cur.generation)
            if log is not None:
                return log, cur.data_offset, cur
        raise StaleEntry(f"needle of {entry.key!r} (clock {entry.clock}) is no longer stored")

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes:
        """Read ``length`` bytes of the entry's data from ``start``; whole small objects are verified."""
        if start < 0 or start > entry.size or (length is not None and length < 0):
            raise ValueError("range outside the object")
        n = entry.size - start if length is None else min(length, entry.size - start)
        log, off, entry = self._locate(entry)
        if n <= INLINE_READ:
            data = pread_exact(log.fd, n, off + start)
        else:
            data = await asyncio.to_thread(pread_exact, log.fd, n, off + start)
        if len(data) != n:
            raise CorruptData(f"short read of {entry.key!r}: {len(data)} of {n} bytes")
        whole = start == 0 and n == entry.size
        if whole and entry.size < self.verify_below and zlib.crc32(data) != entry.crc:
            raise CorruptData(f"checksum mismatch in {entry.key!r}")
        return data

    def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int]:
        """(file object, absolute offset, size) of the entry's data, for sendfile. The caller owns
        and closes the file object; it stays valid after a compaction removes the log."""
        log, off, entry = self._locate(entry)
        f = os.fdopen(os.dup(log.fd), "rb", buffering=0)
        return f, off, entry.size

    def next_namespace(self, after: int = -1) -> int | None:
        """The smallest namespace above ``after`` holding an entry, tombstones included (None: no more)."""
        return self._reader.next_namespace(after)

    def scan(
        self,
        ns: int,
        prefix: bytes = b"",
        *,
        start_after: bytes = b"",
        limit: int = 1000,
        delimiter: bytes | None = None,
        include_tombstones: bool = False,
    ) -> list[Entry | CommonPrefix]:
        """Entries of ``ns`` under ``prefix`` after ``start_after`` in key order, at most ``limit``
        items. With a delimiter, keys sharing prefix + ... + delimiter roll up into one CommonPrefix
        (counted toward the limit) and the scan seeks past them. A common prefix that is not greater
        than ``start_after`` is not returned again, so the last item returned continues a listing."""
        out: list[Entry | CommonPrefix] = []
        hi = prefix_end(prefix)
        if start_after >= prefix:
            lo, inclusive = start_after, False
        else:
            lo, inclusive = prefix, True
        while len(out) < limit:
            want = limit - len(out)
            rows = self._reader.range(ns, lo, inclusive, hi, want if not delimiter else min(want, 256),
                                      include_tombstones)  # fmt: skip
            if not rows:
                break
            jumped = False
            for e in rows:
                if delimiter:
                    i = e.key.find(delimiter, len(prefix))
                    if i >= 0 and e.tombstone:
                        # only live keys make a common prefix (a prefix whose keys were all deleted
                        # is gone); its tombstones are not listed either
                        lo, inclusive = e.key, False
                        continue
                    if i >= 0:
                        cp = e.key[: i + len(delimiter)]
                        if cp > start_after:
                            out.append(CommonPrefix(cp))
                        nxt = prefix_end(cp)
                        if nxt is None:
                            return out
                        lo, inclusive, jumped = nxt, True, True
                        break
                out.append(e)
                lo, inclusive = e.key, False
            if not jumped and len(rows) < (want if not delimiter else min(want, 256)):
                break
        return out
