"""Group commit: one writer thread appends every queued write, syncs each touched log once, and
commits all their index rows in one SQLite transaction before acknowledging them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leofs.storage.container import LogFile, writev_all
from leofs.storage.index import ContainerState, Index
from leofs.storage.model import DiskFull, Entry, PutResult, WriteConflict, condition_holds
from leofs.storage.needle import HEADER_SIZE, encode_needle

FREE_SPACE_TTL = 0.1  # seconds between statvfs calls while writes flow ...
FREE_SPACE_MARGIN = 256 * 1024 * 1024  # ... and free space is above 4 x reserve + this
MAX_BATCH_OPS = 1024
MAX_BATCH_BYTES = 64 * 1024 * 1024
# Deletes may eat into the reserve, but leave this much for SQLite's WAL and the superblock.
DELETE_MARGIN = 256 * 1024


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Stats:
    """Counters that show group commit at work."""

    writes: int = 0  # needles appended by put/delete
    syncs: int = 0  # fdatasync calls on logs
    batches: int = 0  # group commits (index transactions)
    rejected: int = 0  # writes not applied because a newer clock was stored
    disk_full: int = 0  # writes refused with DiskFull


@dataclass(slots=True)
class WriteOp:
    tombstone: bool
    ns: int
    key: bytes
    data: bytes | memoryview
    meta: bytes
    clock: int | None
    timestamp: int | None
    cindex: int
    cnumber: int
    csize: int
    md5: bytes | None
    loop: asyncio.AbstractEventLoop
    fut: asyncio.Future[PutResult]
    #: compare-and-set: None = unconditional, 0 = no live version, else the live version's clock
    expect: int | None = None
    #: a scrub repair: rewrite the current version (same clock and MD5) from a healthy replica's copy
    repair: bool = False


@dataclass(slots=True)
class Job:
    """A function to run on the writer thread between batches (compaction switch, rebuild)."""

    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    fut: asyncio.Future[Any]


def _same_version(op: WriteOp, clock: int, cur: Entry) -> bool:
    """Whether a repair write carries the version the index holds (a new copy of a damaged needle)."""
    return clock == cur.clock and op.tombstone == cur.tombstone and (op.md5 is None or op.md5 == cur.md5)


def resolve(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], value: Any, exc: BaseException | None
) -> None:
    """Complete a future from the writer thread."""
    resolve_all(loop, [(fut, value, exc)])


def resolve_all(
    loop: asyncio.AbstractEventLoop,
    done: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
    first: Callable[[], None] | None = None,
) -> None:
    """Complete a batch's futures from the writer thread: one wake-up of their loop, not one each.
    ``first`` runs on the loop just before (the store's entry cache learns the batch there)."""

    def finish() -> None:
        if first is not None:
            first()
        for fut, value, exc in done:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

    with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
        loop.call_soon_threadsafe(finish)


@dataclass
class _Pending:
    bufs: list[bytes | memoryview] = field(default_factory=list)
    end: int = 0
    last_offset: int = -1
    last_hcrc: int = 0
    count: int = 0


class Writer:
    """Owns appends to the logs and writes to the index (one thread, one SQLite connection)."""

    def __init__(
        self,
        *,
        logs: list[LogFile],
        states: dict[int, ContainerState],
        index: Index,
        sync: bool,
        reserve_bytes: int,
        data_dir: str,
        last_clock: int,
    ) -> None:
        self.logs = logs
        self.states = states
        self.index = index
        self.sync = sync
        self.reserve_bytes = reserve_bytes
        self.data_dir = data_dir
        self.last_clock = last_clock
        self.stats = Stats()
        self._next_container = 0
        self._free = 0
        self._free_at = -1e9
        self._appended = 0  # bytes appended since free space was last measured
        #: called on the writers' event loop with the current entries of the keys a batch wrote,
        #: before their futures resolve (ObjectStore keeps its entry cache with it)
        self.on_stored: Callable[[list[Entry]], None] | None = None
        self.queue: queue.SimpleQueue[WriteOp | Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="leofs-storage-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Finish queued work and end the thread (blocking; call from a worker thread)."""
        self.queue.put(None)
        self.thread.join()

    def next_clock(self, now: int) -> int:
        self.last_clock = max(now, self.last_clock + 1)
        return self.last_clock

    def free_bytes(self, fresh: bool = False) -> int:
        """Free space on the data disk: measured at most every FREE_SPACE_TTL seconds while far above
        the reserve, less what this writer appended since; near the reserve (where the index and its
        WAL also count) and before any refusal it is measured every time."""
        now = time.monotonic()
        near = 4 * self.reserve_bytes + FREE_SPACE_MARGIN
        if fresh or now - self._free_at > FREE_SPACE_TTL or self._free - self._appended < near:
            st = os.statvfs(self.data_dir)
            self._free = st.f_bavail * st.f_frsize
            self._free_at = now
            self._appended = 0
        return self._free - self._appended

    # -- thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        running = True
        while running:
            item = self.queue.get()
            batch: list[WriteOp | Job | None] = [item]
            size = len(item.data) if isinstance(item, WriteOp) else 0
            while item is not None and len(batch) < MAX_BATCH_OPS and size < MAX_BATCH_BYTES:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item.data) if isinstance(item, WriteOp) else 0
            writes: list[WriteOp] = []
            for it in batch:
                if isinstance(it, WriteOp):
                    writes.append(it)
                    continue
                self._commit(writes)
                writes = []
                if it is None:
                    running = False
                    break
                self._run_job(it)
            self._commit(writes)

    def _run_job(self, job: Job) -> None:
        try:
            value = job.fn()
        except BaseException as exc:
            resolve(job.loop, job.fut, None, exc)
        else:
            resolve(job.loop, job.fut, value, None)

    def _commit(self, ops: list[WriteOp]) -> None:
        if not ops:
            return
        try:
            outcome = self._apply(ops)
        except BaseException as err:  # never let the thread die with futures pending
            outcome = [(op, None, err) for op in ops]
        # call_soon_threadsafe writes to the loop's self-pipe every time: one call per loop per batch
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for op, value, exc in outcome:
            done = by_loop.get(op.loop)
            if done is None:
                done = by_loop[op.loop] = []
            done.append((op.fut, value, exc))
        on_stored = self.on_stored
        for loop, done in by_loop.items():
            entries = [value.entry for _, value, _ in done if value is not None]
            first = None if on_stored is None else functools.partial(on_stored, entries)
            resolve_all(loop, done, first)

    def _apply(self, ops: list[WriteOp]) -> list[tuple[WriteOp, PutResult | None, BaseException | None]]:
        now = now_us()
        free, fresh = self.free_bytes(), False
        used = 0
        outcome: list[tuple[WriteOp, PutResult | None, BaseException | None]] = []
        accepted: list[tuple[WriteOp, Entry, Entry | None]] = []
        seen: dict[tuple[int, bytes], Entry | None] = {}
        pend: dict[int, _Pending] = {}
        # The whole batch goes to one container, the next batch to the next: one fdatasync per group
        # commit instead of one per container touched, and the logs still fill evenly. Entries
        # record their container, so where a key's needle lives is free (compaction and the
        # index's conditional moves check the container).
        c = self._next_container % len(self.logs)
        self._next_container = c + 1
        stored = self._stored({(op.ns, op.key) for op in ops})
        for op in ops:
            k = (op.ns, op.key)
            cur = seen[k] if k in seen else stored[k]
            if not condition_holds(op.expect, cur):  # cur includes this batch's earlier writes
                outcome.append((op, None, WriteConflict(f"the current version of {op.key!r} is not the expected one")))
                continue
            if op.clock is None:
                clock = self.next_clock(now)
            else:
                clock = op.clock
                self.last_clock = max(self.last_clock, clock)
            if cur is not None and clock <= cur.clock and not (op.repair and _same_version(op, clock, cur)):
                self.stats.rejected += 1
                outcome.append((op, PutResult(applied=False, entry=cur), None))
                continue
            data = b"" if op.tombstone else op.data
            md5 = b"" if op.tombstone else (op.md5 if op.md5 is not None else hashlib.md5(data).digest())
            ts = op.timestamp if op.timestamp is not None else now
            bufs, total, crc = encode_needle(
                ns=op.ns, key=op.key, meta=op.meta, data=data, clock=clock, timestamp=ts,
                tombstone=op.tombstone, cindex=op.cindex, cnumber=op.cnumber, csize=op.csize,
                md5=md5 or bytes(16),
            )  # fmt: skip
            room = free - (DELETE_MARGIN if op.tombstone else self.reserve_bytes)
            if used + total > room and not fresh:
                free, fresh = self.free_bytes(fresh=True), True  # refuse only on a fresh measurement
                room = free - (DELETE_MARGIN if op.tombstone else self.reserve_bytes)
            if used + total > room:
                self.stats.disk_full += 1
                outcome.append((op, None, DiskFull(f"free space {free} bytes is below the reserve")))
                continue
            used += total
            p = pend.get(c)
            if p is None:
                p = pend[c] = _Pending(end=self.logs[c].end)
            entry = Entry(
                ns=op.ns, key=op.key, clock=clock, timestamp=ts, tombstone=op.tombstone, size=len(data),
                md5=md5, meta=op.meta, cindex=op.cindex, cnumber=op.cnumber, csize=op.csize, container=c,
                generation=self.logs[c].generation, crc=crc,
                data_offset=p.end + HEADER_SIZE + len(op.key) + len(op.meta),
            )  # fmt: skip
            p.bufs.extend(bufs)
            p.last_offset = p.end
            p.last_hcrc = int.from_bytes(bytes(bufs[0][8:12]), "little")
            p.end += total
            p.count += 1
            seen[k] = entry
            accepted.append((op, entry, cur))
        if accepted:
            err = self._persist(pend, [e for _, e, _ in accepted])
            for op, entry, previous in accepted:
                if err is None:
                    outcome.append((op, PutResult(applied=True, entry=entry, previous=previous), None))
                else:
                    outcome.append((op, None, err))
        return outcome

    def _stored(self, keys: set[tuple[int, bytes]]) -> dict[tuple[int, bytes], Entry | None]:
        """The index entries of a batch's keys, read in one transaction: one WAL read lock (two
        fcntl calls) for the batch instead of one per key."""
        get = self.index.get
        if len(keys) == 1:
            return {k: get(*k) for k in keys}
        db = self.index.db
        db.execute("BEGIN")
        try:
            return {k: get(*k) for k in keys}
        finally:
            db.execute("COMMIT")

    def _persist(self, pend: dict[int, _Pending], entries: list[Entry]) -> BaseException | None:
        """Append, sync, then index; on any failure put every touched log back as it was."""
        try:
            for c, p in pend.items():
                writev_all(self.logs[c].fd, p.bufs, self.logs[c].end)
            if self.sync:  # a batch writes one container (see _apply): one fdatasync
                for c in pend:
                    os.fdatasync(self.logs[c].fd)
                self.stats.syncs += len(pend)
            new_states = {}
            self.index.begin()
            try:
                self.index.put_entries(entries)
                for c, p in pend.items():
                    old = self.states[c]
                    st = ContainerState(
                        old.generation, p.end, p.last_offset, p.last_hcrc, old.needles + p.count
                    )
                    self.index.set_container(c, st)
                    new_states[c] = st
                self.index.set_state("last_clock", self.last_clock)
                self.index.commit()
            except BaseException:
                self.index.rollback()
                raise
        except (OSError, sqlite3.Error) as exc:
            for c in pend:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.logs[c].fd, self.logs[c].end)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self.stats.disk_full += len(entries)
                return DiskFull(f"out of space: {exc}")
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                self.stats.disk_full += len(entries)
                return DiskFull(f"out of space: {exc}")
            return exc
        for c, p in pend.items():
            self._appended += p.end - self.logs[c].end
            self.logs[c].end = p.end
        self.states.update(new_states)
        self.stats.writes += len(entries)
        self.stats.batches += 1
        return None
