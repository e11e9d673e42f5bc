"""Public data types of the storage engine: what callers (the storage node, the gateways' backends)
exchange with it, without loading the engine itself (writer, compaction)."""

from __future__ import annotations

import msgspec


class Entry(msgspec.Struct, frozen=True):
    """What the index holds for one key: the latest needle's location and metadata."""

    ns: int
    key: bytes
    clock: int  # microseconds; last writer wins
    timestamp: int  # microseconds since the epoch when the write was made
    tombstone: bool
    size: int  # data length in bytes (0 for tombstones)
    md5: bytes  # 16-byte MD5 of the data (b"" for tombstones)
    meta: bytes  # opaque metadata blob, stored with the needle
    cindex: int  # chunk index (0 = not a chunk)
    cnumber: int  # number of children (0 = not a parent)
    csize: int  # chunk size of children (informational)
    container: int
    generation: int  # log file generation of the container (changes at compaction)
    data_offset: int  # absolute offset of the data bytes within that log file
    crc: int  # CRC32 of the data as stored in the needle


class PutResult(msgspec.Struct, frozen=True):
    """Outcome of a put or delete: ``applied`` is False when a newer clock was already stored.

    ``previous`` is the entry an applied write replaced (None for a new key), so callers need not
    look it up before writing.
    """

    applied: bool
    entry: Entry
    previous: Entry | None = None


class CommonPrefix(msgspec.Struct, frozen=True):
    """A delimiter roll-up in a scan: every key under ``prefix`` was skipped."""

    prefix: bytes


class ContainerUsage(msgspec.Struct, frozen=True):
    """Space used by one container: live entries vs. everything in its log."""

    container: int
    generation: int
    active_count: int
    active_bytes: int
    total_count: int
    total_bytes: int  # log file size


class CompactionStatus(msgspec.Struct, frozen=True):
    """State of the compaction runs (``leofs adm compact-status``)."""

    state: str  # "idle" | "running"
    pending: list[int]
    ongoing: list[int]
    done: list[int]
    last_started: float | None
    last_finished: float | None
    reclaimed_bytes: int
    progress: float = 0.0  # fraction of the current run's log bytes processed (1.0 when done)


class DamagedNeedle(msgspec.Struct, frozen=True):
    """A needle that failed its checks during a scrub (``leofs adm diagnose-start``)."""

    container: int
    generation: int
    offset: int
    key: bytes | None
    reason: str


class DiskFull(Exception):
    """Raised by writes when free space is below the reserve; reads, deletes and compaction go on."""


class WriteConflict(Exception):
    """Raised by a conditional write (``expect``) when the key's current version is not the one
    expected: the compare-and-set is evaluated by the writer, against the index and the writes
    before it in the same batch."""


#: ``expect`` value of a write that must not replace a live version (the key is absent or deleted)
EXPECT_ABSENT = 0


def condition_holds(expect: int | None, current: Entry | None) -> bool:
    """Whether a write conditioned on ``expect`` may replace ``current``: None = unconditional,
    :data:`EXPECT_ABSENT` = no live version, otherwise the live version's clock must equal it."""
    if expect is None:
        return True
    live = current is not None and not current.tombstone
    if expect == EXPECT_ABSENT:
        return not live
    return live and current is not None and current.clock == expect


class CorruptData(Exception):
    """Raised when stored data fails its checksum on read."""


class StaleEntry(LookupError):
    """The entry's needle is gone (overwritten and compacted away): look the key up again."""
