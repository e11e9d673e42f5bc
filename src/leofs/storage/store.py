"""The storage node's object store: containers of append-only needle logs plus one ordered index.

This module is the public face of the storage engine. Everything above it (the storage node's
replication, the embedded server) uses only what is defined here. The engine knows nothing of S3:
keys are bytes, user-level metadata is an opaque ``meta`` blob.

Namespaces (``ns``) separate key spaces that are listed independently; the engine gives them no
meaning beyond that (the gateway's are in ``leofs.gateway.keys``). Callers take the engine's data
types from ``leofs.storage.model``.

Layout of a data directory (see docs/storage-format.md): ``superblock``, ``index.sqlite3`` and
``avs/CCCCCC.gGGGGGG.log`` per container.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from leofs.fsmode import make_private_dir
from leofs.storage import compaction, recovery
from leofs.storage.container import LogFile, fsync_dir, list_generations
from leofs.storage.index import ContainerState, Index
from leofs.storage.model import (
    CompactionStatus,
    ContainerUsage,
    DamagedNeedle,
    Entry,
    PutResult,
)
from leofs.storage.needle import HEADER_SIZE, LOG_HEADER_SIZE, check_write
from leofs.storage.reads import StoreReads
from leofs.storage.scrub import ScrubReport, scrub_logs
from leofs.storage.writer import Job, Stats, WriteOp, Writer

__all__ = ["ObjectStore"]

log = logging.getLogger("leofs.storage")

SUPERBLOCK_MAGIC = "leofs-storage"
FORMAT_VERSION = 1
ENTRY_CACHE = 16384  # index entries kept in memory by the process that owns the writer


class Superblock(msgspec.Struct):
    magic: str
    format: int
    containers: int
    created: float


def _load_superblock(path: Path, containers: int) -> Superblock:
    """Read the superblock, or write a new one atomically for a fresh directory."""
    sb_path = path / "superblock"
    if sb_path.exists():
        sb = msgspec.json.decode(sb_path.read_bytes(), type=Superblock)
        if sb.magic != SUPERBLOCK_MAGIC or sb.format != FORMAT_VERSION:
            raise ValueError(f"{sb_path}: unsupported storage format {sb.magic!r} v{sb.format}")
        return sb
    if containers < 1:
        raise ValueError("containers must be at least 1")
    sb = Superblock(SUPERBLOCK_MAGIC, FORMAT_VERSION, containers, time.time())
    tmp = path / "superblock.tmp"
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(sb) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, sb_path)
    fsync_dir(path)
    return sb


class ObjectStore(StoreReads):
    """Durable object store. Create with ``await ObjectStore.open(path)``."""

    def __init__(self, path: Path, writer: Writer, reader: Index, files: dict[tuple[int, int], LogFile], *,
                 tombstone_grace: float, verify_below: int) -> None:  # fmt: skip
        self.path = path
        self._writer = writer
        self._reader = reader
        self._files = files  # every LogFile a read may use, by (container, generation)
        self.tombstone_grace = tombstone_grace
        self.verify_below = verify_below
        self.containers = len(writer.logs)
        self._cache: dict[tuple[int, bytes], Entry | None] = {}
        writer.on_stored = self._learn_batch
        self._closed = False
        self._compaction = CompactionStatus("idle", [], [], [], None, None, 0)
        self._progress_total = 0
        self._progress_done = 0

    def _log(self, container: int, generation: int) -> LogFile | None:
        return self._files.get((container, generation))

    def get(self, ns: int, key: bytes) -> Entry | None:
        """The index entry for (ns, key), tombstones included, from the entry cache when it holds it.

        The cache is this process's own: every write passes through this store's writer, which
        hands each batch's entries to the event loop before acknowledging them, and lookups and
        updates of the cache happen only on that loop. So a cached entry is never older than an
        acknowledged write; a lookup that raced a commit is overwritten when the batch arrives."""
        try:
            return self._cache[(ns, key)]
        except KeyError:
            pass
        entry = self._reader.get(ns, key)
        self._remember((ns, key), entry)
        return entry

    def _remember(self, k: tuple[int, bytes], entry: Entry | None) -> None:
        cache = self._cache
        if k not in cache and len(cache) >= ENTRY_CACHE:
            del cache[next(iter(cache))]  # the oldest insertion
        cache[k] = entry

    def _learn_batch(self, entries: list[Entry]) -> None:
        """The writer's callback (on the loop, before the batch is acknowledged)."""
        for e in entries:
            self._remember((e.ns, e.key), e)

    @property
    def stats(self) -> Stats:
        """Counters: writes, syncs (fdatasync calls), batches (group commits), rejected, disk_full."""
        return self._writer.stats

    @property
    def last_clock(self) -> int:
        """The highest clock this store has assigned or accepted (a coordinator's clocks exceed it)."""
        return self._writer.last_clock

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        containers: int = 8,
        sync: bool = True,
        tombstone_grace: float = 7 * 86400.0,
        reserve_bytes: int = 64 * 1024 * 1024,
        verify_below: int = 1024 * 1024,
    ) -> ObjectStore:
        """Open (creating if needed) the store in ``path`` and recover it from any crash.

        ``containers`` only applies to a new directory; an existing one keeps its recorded count.
        """
        return await asyncio.to_thread(
            cls._open_sync, Path(path), containers, sync, tombstone_grace, reserve_bytes, verify_below
        )

    @classmethod
    def _open_sync(cls, path: Path, containers: int, sync: bool, tombstone_grace: float,
                   reserve_bytes: int, verify_below: int) -> ObjectStore:  # fmt: skip
        make_private_dir(path)  # 0700/0600, also for a store created with looser modes
        avs = path / "avs"
        avs.mkdir(exist_ok=True)
        sb = _load_superblock(path, containers)
        index = Index(path / "index.sqlite3", create=True)
        known = index.containers()
        logs: list[LogFile] = []
        states: dict[int, ContainerState] = {}
        max_clock = index.state("last_clock")
        plans: list[tuple[LogFile, ContainerState | None]] = []
        for c in range(sb.containers):
            gens = list_generations(avs, c)
            st = known.get(c)
            # Without a record (new store or lost index) the lowest generation is the complete one:
            # a higher one is an unfinished compaction or a finished one whose old log still exists.
            gen = st.generation if st is not None else (gens[0] if gens else 1)
            for g in gens:
                if g != gen:
                    os.unlink(avs / f"{c:06d}.g{g:06d}.log")
            log = LogFile.open(avs, c, gen)
            ok = st is not None and st.generation == gen and recovery.consistent(log, st)
            plans.append((log, st if ok else None))
        if any(st is None for _, st in plans):
            # A key's older needles may sit in other containers than its newest one, so an index
            # that disagrees with any log is rebuilt from all of them (the newest clock wins).
            index.clear_entries()
            plans = [(log, None) for log, _ in plans]
        for log, st in plans:
            st, clk = recovery.replay(index, log, st) if st is not None else recovery.rebuild(index, log)
            max_clock = max(max_clock, clk)
            logs.append(log)
            states[log.container] = st
        fsync_dir(avs)
        writer = Writer(logs=logs, states=states, index=index, sync=sync, reserve_bytes=reserve_bytes,
                        data_dir=str(path), last_clock=max_clock)  # fmt: skip
        writer.start()
        files = {(log.container, log.generation): log for log in logs}
        return cls(path, writer, Index(path / "index.sqlite3"), files,
                   tombstone_grace=tombstone_grace, verify_below=verify_below)  # fmt: skip

    async def close(self) -> None:
        """Finish queued writes and close every file."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.stop)
        self._writer.index.close()
        self._reader.close()
        for log in self._files.values():
            log.close()
        self._files.clear()

    # -- writes -------------------------------------------------------------------------------------
    def submit(
        self,
        ns: int,
        key: bytes,
        data: bytes | memoryview = b"",
        *,
        tombstone: bool = False,
        meta: bytes = b"",
        clock: int | None = None,
        timestamp: int | None = None,
        cindex: int = 0,
        cnumber: int = 0,
        csize: int = 0,
        md5: bytes | None = None,
        expect: int | None = None,
        repair: bool = False,
    ) -> asyncio.Future[PutResult]:
        """Queue a put (or with ``tombstone`` a delete) and return its future, resolved once the
        write is durable: for callers that answer from a callback (the write link). With ``expect``
        the write is a compare-and-set (see :func:`~leofs.storage.model.condition_holds`); it fails
        with :class:`WriteConflict`."""
        check_write(key, meta, md5, ns=ns, clock=clock, timestamp=timestamp, cindex=cindex, cnumber=cnumber,
                    csize=csize)
        if self._closed:
            raise RuntimeError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[PutResult] = loop.create_future()
        if tombstone:
            data, meta, cindex, cnumber, csize, md5 = b"", b"", 0, 0, 0, None
        self._writer.queue.put(WriteOp(tombstone, ns, bytes(key), data, bytes(meta), clock, timestamp, cindex,
                                       cnumber, csize, md5, loop, fut, expect, repair))  # fmt: skip
        return fut

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
        """Store ``data`` under (ns, key); returns once durable. Older clocks are not applied;
        ``expect``: a compare-and-set (see ``submit``)."""
        return await self.submit(ns, key, data, meta=meta, clock=clock, timestamp=timestamp, cindex=cindex,
                                 cnumber=cnumber, csize=csize, md5=md5, expect=expect)  # fmt: skip

    async def delete(
        self, ns: int, key: bytes, *, clock: int | None = None, timestamp: int | None = None,
        expect: int | None = None,
    ) -> PutResult:
        """Write a tombstone for (ns, key), even if the key is absent (replicas rely on it)."""
        return await self.submit(ns, key, tombstone=True, clock=clock, timestamp=timestamp, expect=expect)

    async def repair_put(self, entry: Entry, data: bytes | memoryview) -> PutResult:
        """Store a healthy copy of ``entry``'s version (same clock and MD5) over a damaged needle; not
        applied when the index holds another version by then (a newer write needs no repair)."""
        return await self.submit(entry.ns, entry.key, data, tombstone=entry.tombstone, meta=entry.meta,
                                 clock=entry.clock, timestamp=entry.timestamp, cindex=entry.cindex,
                                 cnumber=entry.cnumber, csize=entry.csize, md5=entry.md5 or None,
                                 repair=True)  # fmt: skip

    def entry_at(self, container: int, generation: int, offset: int) -> Entry | None:
        """The index entry whose needle starts at ``offset`` of a log (a scrub's damaged needle)."""
        return self._reader.entry_at(container, generation, offset, HEADER_SIZE)

    async def _job(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._writer.queue.put(Job(fn, loop, fut))
        return await fut

    async def rebuild_index(self) -> None:
        """Re-create the whole index from the logs (on the writer thread, so writes wait)."""

        def run() -> None:
            for log in self._writer.logs:
                st, _ = recovery.rebuild(self._writer.index, log)
                self._writer.states[log.container] = st

        await self._job(run)
        self._cache.clear()

    # -- administration -----------------------------------------------------------------------------
    def usage(self) -> list[ContainerUsage]:
        """Per container: live (non-tombstone) entries and their needle bytes vs. the whole log."""
        active = self._reader.active_usage(HEADER_SIZE)
        out = []
        for log in list(self._writer.logs):
            cnt, size = active.get(log.container, (0, 0))
            st = self._writer.states[log.container]
            out.append(ContainerUsage(log.container, log.generation, cnt, size, st.needles, log.end))
        return out

    def compaction_status(self) -> CompactionStatus:
        """Current compaction state with progress of the running (or last) compaction."""
        s = self._compaction
        prog = 1.0 if not self._progress_total else min(1.0, self._progress_done / self._progress_total)
        return msgspec.structs.replace(s, pending=list(s.pending), ongoing=list(s.ongoing),
                                       done=list(s.done), progress=prog)  # fmt: skip

    async def compact(
        self, containers: list[int] | None = None, *, keep: Callable[[Entry], bool] | None = None
    ) -> CompactionStatus:
        """Compact the given containers (default all), one at a time, and return the final status.

        Reads and writes go on meanwhile. ``keep`` may reject entries (e.g. keys no longer owned).
        To run it in the background, wrap it in a task and poll ``compaction_status()``.
        """
        if self._compaction.state == "running":
            raise RuntimeError("compaction already running")
        targets = sorted(set(range(self.containers) if containers is None else containers))
        for c in targets:
            if not 0 <= c < self.containers:
                raise ValueError(f"no container {c}")
        keep_fn = keep if keep is not None else (lambda _e: True)
        self._progress_total = sum(max(self._writer.logs[c].end - LOG_HEADER_SIZE, 0) for c in targets) or 1
        self._progress_done = 0
        done: list[int] = []
        reclaimed = 0
        self._compaction = CompactionStatus("running", list(targets), [], [], time.time(), None, 0)
        try:
            for c in targets:
                self._set_compaction(pending=[t for t in targets if t not in done and t != c], ongoing=[c])
                try:
                    await self._compact_one(c, keep_fn, lambda r: self._add_reclaimed(r))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    # The copy needs room for the container's live data; the half-written copy is
                    # gone and the container is as it was. Others may be smaller: go on.
                    log.warning("not enough free space to compact container %d; skipped", c)
                    continue
                done.append(c)
                reclaimed = self._compaction.reclaimed_bytes
                self._set_compaction(ongoing=[], done=list(done))
        finally:
            self._set_compaction(state="idle", pending=[], ongoing=[], last_finished=time.time(),
                                 reclaimed_bytes=reclaimed)  # fmt: skip
            self._progress_done = self._progress_total
        return self.compaction_status()

    def _set_compaction(self, **changes: Any) -> None:
        self._compaction = msgspec.structs.replace(self._compaction, **changes)

    def _add_reclaimed(self, n: int) -> None:
        self._set_compaction(reclaimed_bytes=self._compaction.reclaimed_bytes + n)

    def _add_progress(self, n: int) -> None:
        self._progress_done += n

    async def _compact_one(
        self, c: int, keep: Callable[[Entry], bool], reclaimed: Callable[[int], None]
    ) -> None:
        old = self._writer.logs[c]
        grace_us = int(self.tombstone_grace * 1e6)
        cp = await asyncio.to_thread(
            compaction.copy_live, self.path / "index.sqlite3", self.path / "avs", old,
            keep=keep, grace_us=grace_us, progress=self._add_progress,
        )  # fmt: skip
        n = await self._job(lambda: compaction.switch(cp, self._writer, self._files, self.path / "avs"))
        self._cache.clear()  # entries moved to the new generation
        # Entries read before the switch now resolve through the index (see _locate).
        self._files.pop((c, old.generation), None)
        reclaimed(n)

    async def scrub(self) -> list[DamagedNeedle]:
        """Check every needle's header and data CRC (in a worker thread); report the damaged ones."""
        return (await self.scrub_report()).damaged

    async def scrub_report(self) -> ScrubReport:
        """Like :meth:`scrub`, also counting the needles checked."""
        return await asyncio.to_thread(scrub_logs, list(self._writer.logs))
