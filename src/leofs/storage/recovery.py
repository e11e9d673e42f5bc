"""Bringing the index in line with the logs on open: replay a tail, cut a torn one, or rebuild."""

from __future__ import annotations

import os
from collections.abc import Iterator

from leofs.storage.container import LogFile, NeedleScan
from leofs.storage.index import ContainerState, Index
from leofs.storage.model import Entry
from leofs.storage.needle import LOG_HEADER_SIZE, Needle, NeedleError, read_needle


def needle_entry(n: Needle, container: int, generation: int) -> Entry:
    """The index entry a needle stands for."""
    h = n.header
    return Entry(
        ns=h.ns, key=n.key, clock=h.clock, timestamp=h.timestamp, tombstone=h.tombstone, size=h.data_len,
        md5=b"" if h.tombstone else h.md5, meta=n.meta, cindex=h.cindex, cnumber=h.cnumber, csize=h.csize,
        container=container, generation=generation, data_offset=n.data_offset, crc=n.data_crc,
    )  # fmt: skip


class _Feed:
    """Turns a needle scan into entries while remembering the last needle and the highest clock."""

    def __init__(self, scan: NeedleScan, log: LogFile, st: ContainerState) -> None:
        self.scan = scan
        self.log = log
        self.count = 0
        self.last = (st.last_offset, st.last_hcrc)
        self.max_clock = 0

    def __iter__(self) -> Iterator[Entry]:
        for n in self.scan:
            self.count += 1
            self.last = (n.offset, n.header.hcrc)
            self.max_clock = max(self.max_clock, n.header.clock)
            yield needle_entry(n, self.log.container, self.log.generation)


def consistent(log: LogFile, st: ContainerState) -> bool:
    """True when the log still holds, intact, the needle the index says it applied last."""
    size = log.size()
    if size < st.applied:
        return False
    if st.last_offset < 0:
        return st.applied == LOG_HEADER_SIZE
    try:
        n = read_needle(log.fd, st.last_offset, size, verify_data=False)
    except NeedleError:
        return False
    return n.end == st.applied and n.header.hcrc == st.last_hcrc


def _cut(log: LogFile, stop: int) -> None:
    """Drop a torn or corrupt tail so that new needles follow the last good one."""
    if log.size() != stop:
        os.ftruncate(log.fd, stop)
        os.fsync(log.fd)
    log.end = stop


def replay(index: Index, log: LogFile, st: ContainerState) -> tuple[ContainerState, int]:
    """Apply the needles after the applied offset; returns the new state and the highest clock seen."""
    scan = log.needles(st.applied)
    feed = _Feed(scan, log, st)
    index.begin()
    try:
        index.upsert_lww(feed)
        new = ContainerState(log.generation, scan.stop, feed.last[0], feed.last[1], st.needles + feed.count)
        index.set_container(log.container, new)
        index.commit()
    except BaseException:
        index.rollback()
        raise
    _cut(log, scan.stop)
    return new, feed.max_clock


def rebuild(index: Index, log: LogFile) -> tuple[ContainerState, int]:
    """Re-create every index entry of this container from its log (highest clock wins).

    A damaged needle inside the log is indexed as it stands (its reads fail their CRC, the scrub
    reports it); only a bad needle at the end is cut, as a torn tail."""
    # keep_damaged: a flipped bit inside the log must not cut off every needle after it
    scan = log.needles(LOG_HEADER_SIZE, keep_damaged=True)
    feed = _Feed(scan, log, ContainerState(log.generation, LOG_HEADER_SIZE, -1, 0, 0))
    index.begin()
    try:
        index.delete_container_entries(log.container)
        index.upsert_lww(feed)
        new = ContainerState(log.generation, scan.stop, feed.last[0], feed.last[1], feed.count)
        index.set_container(log.container, new)
        index.commit()
    except BaseException:
        index.rollback()
        raise
    _cut(log, scan.stop)
    return new, feed.max_clock
