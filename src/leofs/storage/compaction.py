"""Online compaction of one container, in two phases.

1. ``copy_live`` (a worker thread): copy every needle the index still points at into a new-generation
   log, dropping overwritten needles, tombstones past their grace and entries ``keep`` rejects; fsync.
2. ``switch`` (the writer thread, so no write can interleave): copy the needles appended meanwhile,
   fsync, repoint the index and record the new generation in ONE transaction, then unlink the old log.

A crash before the transaction leaves an unrecorded new file (deleted on open); a crash after it leaves
the old file (deleted on open). Either way the index matches a complete log.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from leofs.storage.container import LogFile, fsync_dir, write_all
from leofs.storage.index import ContainerState, Index
from leofs.storage.model import Entry
from leofs.storage.needle import LOG_HEADER_SIZE, Needle, pread_exact
from leofs.storage.writer import Writer, now_us

_FLUSH = 8 * 1024 * 1024


@dataclass
class Copy:
    """State carried from the copy phase to the switch."""

    container: int
    old: LogFile
    new: LogFile
    scanned_end: int  # old-log offset up to which needles were considered
    moves: list[tuple[int, int, int, bytes, int, int, int]] = field(default_factory=list)
    drops: list[tuple[int, bytes, int, int, int]] = field(default_factory=list)
    copied: int = 0
    last_offset: int = -1
    last_hcrc: int = 0


class _Out:
    """Buffered appends to the new log."""

    def __init__(self, cp: Copy) -> None:
        self.cp = cp
        self.buf: list[bytes] = []
        self.size = 0

    def add(self, n: Needle) -> None:
        cp = self.cp
        raw = pread_exact(cp.old.fd, n.header.total_len, n.offset)
        off = cp.new.end + self.size
        new_data = off + n.header.data_start
        cp.moves.append((cp.new.generation, new_data, n.header.ns, n.key, cp.container, cp.old.generation,
                         n.data_offset))  # fmt: skip
        cp.copied += 1
        cp.last_offset, cp.last_hcrc = off, n.header.hcrc
        self.buf.append(raw)
        self.size += len(raw)
        if self.size >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            write_all(self.cp.new.fd, b"".join(self.buf), self.cp.new.end)
            self.cp.new.end += self.size
            self.buf, self.size = [], 0


def _is_current(cur: Entry | None, log: LogFile, n: Needle) -> bool:
    return (cur is not None and cur.container == log.container and cur.generation == log.generation
            and cur.data_offset == n.data_offset)  # fmt: skip


def copy_live(
    index_path: Path,
    avs: Path,
    old: LogFile,
    *,
    keep: Callable[[Entry], bool],
    grace_us: int,
    progress: Callable[[int], None],
) -> Copy:
    """Phase 1, off the writer thread: copy live needles of ``old`` into a new-generation log."""
    idx = Index(index_path)
    new = LogFile.create(avs, old.container, old.generation + 1)
    cp = Copy(old.container, old, new, old.end)
    out = _Out(cp)
    now = now_us()
    try:
        last = LOG_HEADER_SIZE
        scan = old.needles(LOG_HEADER_SIZE, cp.scanned_end, verify_data=False)
        for n in scan:
            progress(n.end - last)
            last = n.end
            cur = idx.get(n.header.ns, n.key)
            if cur is None or not _is_current(cur, old, n):
                continue  # overwritten, or dropped by an earlier compaction
            if (cur.tombstone and now - cur.timestamp > grace_us) or not keep(cur):
                cp.drops.append((cur.ns, cur.key, old.container, old.generation, n.data_offset))
                continue
            out.add(n)
        if scan.stop < cp.scanned_end:
            raise RuntimeError(
                f"container {old.container}: damaged needle at offset {scan.stop} ({scan.error});"
                " run a scrub and repair before compacting"
            )
        out.flush()
        os.fsync(new.fd)
    except BaseException:
        discard(new)
        raise
    finally:
        idx.close()
    return cp


def discard(new: LogFile) -> None:
    """Remove an unfinished new-generation log."""
    new.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(new.path)


def switch(cp: Copy, writer: Writer, files: dict[tuple[int, int], LogFile], avs: Path) -> int:
    """Phase 2, on the writer thread: catch up, switch generations atomically; returns bytes reclaimed."""
    c = cp.container
    old = writer.logs[c]
    assert old is cp.old, "container switched by someone else"
    try:
        out = _Out(cp)
        for n in old.needles(cp.scanned_end, old.end, verify_data=False):
            if _is_current(writer.index.get(n.header.ns, n.key), old, n):
                out.add(n)
        out.flush()
        os.fsync(cp.new.fd)
        fsync_dir(avs)
    except BaseException:
        discard(cp.new)
        raise
    files[(c, cp.new.generation)] = cp.new
    st = ContainerState(cp.new.generation, cp.new.end, cp.last_offset, cp.last_hcrc, cp.copied)
    # This commit is what makes the old log deletable, so it must reach the disk: FULL sync.
    writer.index.set_full_sync(True)
    try:
        writer.index.begin()
        try:
            writer.index.move(cp.moves)
            writer.index.drop(cp.drops)
            writer.index.set_container(c, st)
            writer.index.commit()
        except BaseException:
            writer.index.rollback()
            files.pop((c, cp.new.generation), None)
            discard(cp.new)
            raise
    finally:
        writer.index.set_full_sync(False)
    writer.logs[c] = cp.new
    writer.states[c] = st
    reclaimed = old.end - cp.new.end
    os.unlink(old.path)  # readers holding the LogFile keep their open fd
    fsync_dir(avs)
    return reclaimed
