"""Scrub: check every needle of every log (the backend of ``leofs adm diagnose-start``)."""

from __future__ import annotations

import msgspec

from leofs.storage.container import LogFile
from leofs.storage.model import DamagedNeedle
from leofs.storage.needle import (
    LOG_HEADER_SIZE,
    NEEDLE_MAGIC,
    DataCrcError,
    NeedleError,
    pread_exact,
    read_needle,
)

_CHUNK = 1024 * 1024


def _next_candidate(fd: int, off: int, end: int) -> int:
    """The next 8-aligned offset after ``off`` where a needle magic appears (or ``end``)."""
    pos = off + 8
    while pos < end:
        buf = pread_exact(fd, min(_CHUNK, end - pos), pos)
        if not buf:
            break
        i = buf.find(NEEDLE_MAGIC)
        while i >= 0 and (pos + i) % 8:
            i = buf.find(NEEDLE_MAGIC, i + 1)
        if i >= 0:
            return pos + i
        pos += max(8, len(buf) - len(NEEDLE_MAGIC)) & ~7
    return end


class ScrubReport(msgspec.Struct, frozen=True):
    """Outcome of a scrub: how many needles were checked (damaged ones included) and which failed."""

    checked: int
    damaged: list[DamagedNeedle]


def scrub_log(log: LogFile) -> ScrubReport:
    """Verify the header and data CRC of every needle in one log; resynchronise past damage."""
    damaged: list[DamagedNeedle] = []
    checked = 0
    end = log.end
    off = LOG_HEADER_SIZE
    while off < end:
        checked += 1
        try:
            n = read_needle(log.fd, off, end)
        except DataCrcError as exc:
            damaged.append(DamagedNeedle(log.container, log.generation, off, exc.needle.key, str(exc)))
            off = exc.needle.end
            continue
        except NeedleError as exc:
            damaged.append(DamagedNeedle(log.container, log.generation, off, None, str(exc)))
            off = _next_candidate(log.fd, off, end)
            continue
        off = n.end
    return ScrubReport(checked, damaged)


def scrub_logs(logs: list[LogFile]) -> ScrubReport:
    """Scrub each log in turn (runs in a worker thread)."""
    checked = 0
    damaged: list[DamagedNeedle] = []
    for log in logs:
        report = scrub_log(log)
        checked += report.checked
        damaged.extend(report.damaged)
    return ScrubReport(checked, damaged)
