"""A storage node's object calls, whichever protocol carried them (docs/internal-api.md).

PUT and DELETE (coordinated: the quorum; replica: the coordinator's clock), META and GET of one key,
as plain calls on decoded arguments that return an :class:`Answer`: the status and what goes with
it. The HTTP API (:mod:`leofs.node.node_api`) and the binary protocol (:mod:`leofs.node.rpc_api`)
only decode a request into a call and encode its answer, so both give every status the same
meaning: 304 ``match`` equals the version's clock, 400 bad input to a write, 404 missing or
tombstone, 409 ``clock`` differs from the local copy or the local copy fails its checksum (try
another replica), 412 a conditional write's ``expect`` did not hold, 416 range outside the object,
503 no quorum, no ring yet or a late write, 507 disk full.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import BinaryIO

from leofs.internal.messages import PutHeader, Written
from leofs.node.coordinator import Coordinator, Unavailable
from leofs.storage.model import CorruptData, DiskFull, Entry, PutResult, StaleEntry, WriteConflict
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.calls")

#: an open container file, the offset and the length to send from it; whoever sends it closes it
FileRegion = tuple[BinaryIO, int, int]


@dataclass(frozen=True, slots=True)
class Answer:
    """What an object call answers; the adapters encode it in their protocol."""

    status: int
    message: str = ""  # an error's text ("" where the status says it all)
    entry: Entry | None = None  # META, GET (200 and 304), replica PUT/DELETE
    applied: bool = True  # replica PUT/DELETE: False when a newer version was already there
    written: Written | None = None  # coordinated PUT/DELETE
    data: bytes = b""  # GET: the bytes read, unless ``file`` is sent instead
    file: FileRegion | None = None  # GET of a large object: sent with sendfile, unverified


def check_deadline(deadline: float | None) -> None:
    """Unavailable (503) when a gateway's write arrives after its deadline: the gateway stopped
    waiting (it may have sent it to another node meanwhile), so it must not get a clock here."""
    if deadline is not None and time.time() > deadline:
        log.warning("refused a write the gateway stopped waiting for %.1f s ago", time.time() - deadline)
        raise Unavailable("the request arrived after its deadline")


async def _answer(call: Awaitable[Answer], *, write: bool) -> Answer:
    """The call's answer, or the status of the error it raised. A ValueError is the caller's bad
    input only in a write (key, metadata or clock the store cannot hold); elsewhere it propagates."""
    try:
        return await call
    except Unavailable as exc:
        return Answer(503, str(exc))
    except DiskFull as exc:
        return Answer(507, str(exc) or "disk full")
    except WriteConflict as exc:
        return Answer(412, str(exc))
    except ValueError as exc:
        if not write:
            raise
        return Answer(400, str(exc))


def _stored(result: PutResult) -> Answer:
    return Answer(200, entry=result.entry, applied=result.applied)


class ObjectCalls:
    """The object calls over one node's store and coordinator."""

    def __init__(self, store: ObjectStore, coordinator: Coordinator) -> None:
        self.store = store
        self.coordinator = coordinator

    async def put(self, ns: int, key: bytes, data: bytes | memoryview, header: PutHeader, *, coordinate: bool,
                  deadline: float | None = None) -> Answer:  # fmt: skip
        """PUT: coordinated (the quorum; ``written``), or a replica's copy at the coordinator's clock."""
        return await _answer(self._put(ns, key, data, header, coordinate, deadline), write=True)

    async def _put(self, ns: int, key: bytes, data: bytes | memoryview, header: PutHeader, coordinate: bool,
                   deadline: float | None) -> Answer:  # fmt: skip
        if coordinate:
            check_deadline(deadline)
            return Answer(200, written=await self.coordinator.put(ns, key, data, header))
        if header.clock is None:
            raise ValueError("a replica write needs the coordinator's clock")
        return _stored(await self.store.put(ns, key, data, meta=header.meta, clock=header.clock,
                                            timestamp=header.timestamp, cindex=header.cindex, cnumber=header.cnumber,
                                            csize=header.csize, md5=header.md5))  # fmt: skip

    async def delete(self, ns: int, key: bytes, *, coordinate: bool, deadline: float | None = None,
                     expect: int | None = None, clock: int | None = None,
                     timestamp: int | None = None) -> Answer:  # fmt: skip
        """DELETE: coordinated (``expect``: a compare-and-set), or a replica's tombstone at ``clock``."""
        return await _answer(self._delete(ns, key, coordinate, deadline, expect, clock, timestamp), write=True)

    async def _delete(self, ns: int, key: bytes, coordinate: bool, deadline: float | None, expect: int | None,
                      clock: int | None, timestamp: int | None) -> Answer:  # fmt: skip
        if coordinate:
            check_deadline(deadline)
            return Answer(200, written=await self.coordinator.delete(ns, key, expect=expect))
        if clock is None:
            raise ValueError("a replica delete needs the coordinator's clock")
        return _stored(await self.store.delete(ns, key, clock=clock, timestamp=timestamp))

    async def meta(self, ns: int, key: bytes, *, coordinate: bool) -> Answer:
        """META: the entry (tombstones included); coordinated, after the read check of R replicas."""
        return await _answer(self._meta(ns, key, coordinate), write=False)

    async def _meta(self, ns: int, key: bytes, coordinate: bool) -> Answer:
        entry = await self._lookup(ns, key, coordinate)
        return Answer(404) if entry is None else Answer(200, entry=entry)

    async def get(self, ns: int, key: bytes, *, coordinate: bool, clock: int | None = None, match: int | None = None,
                  start: int = 0, length: int | None = None) -> Answer:  # fmt: skip
        """GET: the version (``clock``: that one only), 304 on ``match``, the range from ``start``."""
        return await _answer(self._get(ns, key, coordinate, clock, match, start, length), write=False)

    async def _get(self, ns: int, key: bytes, coordinate: bool, want: int | None, match: int | None, start: int,
                   length: int | None) -> Answer:  # fmt: skip
        # with clock= the caller already chose the version (after a compared META): no second compare
        entry = await self._lookup(ns, key, coordinate and want is None)
        if entry is None or entry.tombstone:
            return Answer(404)
        if want is not None and entry.clock != want:
            return Answer(409, f"local clock {entry.clock}")
        if match is not None and entry.clock == match:  # the caller (a gateway cache) holds this version
            return Answer(304, entry=entry)
        for _ in range(2):
            # the range of this entry: a second pass reads another version, which has its own size
            if start < 0 or start > entry.size or (length is not None and length < 0):
                return Answer(416, "range outside the object")
            n = entry.size - start if length is None else min(length, entry.size - start)
            try:
                return await self._read(entry, start, n)
            except StaleEntry:  # compacted or overwritten meanwhile: look again
                fresh = self.store.get(ns, key)
                if fresh is None or fresh.tombstone or (want is not None and fresh.clock != want):
                    break
                entry = fresh
            except CorruptData as exc:
                # let the caller try another replica; a scrub/diagnose reports the damage
                log.error("corrupt local copy of %r: %s", key, exc)
                return Answer(409, "local copy failed its checksum")
        return Answer(409, "the version changed while reading")

    async def _read(self, entry: Entry, start: int, n: int) -> Answer:
        """Small objects are read (and verified); larger ones go from the container file."""
        if n == 0 or entry.size < self.store.verify_below:
            data = await self.store.read(entry, start, n) if n else b""
            return Answer(200, entry=entry, data=data)
        fobj, offset, _size = self.store.open_data(entry)
        return Answer(200, entry=entry, file=(fobj, offset + start, n))

    async def _lookup(self, ns: int, key: bytes, compare: bool) -> Entry | None:
        if compare:
            return await self.coordinator.check_read(ns, key)
        return self.store.get(ns, key)
