"""The storage node's object store: containers of append-only needle logs plus one ordered index.

This module is the public face of the storage engine. Everything above it (the storage node's
replication, the embedded server) uses only what is defined here. The engine knows nothing of S3:
keys are bytes, user-level metadata is an opaque ``meta`` blob.

Namespaces (``ns``) separate key spaces that are listed independently; the engine gives them no
meaning beyond that. The gateway uses NS_OBJECT for visible objects, NS_CHUNK for chunks and
multipart parts, and NS_UPLOAD for open multipart uploads.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import msgspec

NS_OBJECT = 0
NS_CHUNK = 1
NS_UPLOAD = 2


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
    """Outcome of a put or delete: ``applied`` is False when a newer clock was already stored."""

    applied: bool
    entry: Entry


class CommonPrefix(msgspec.Struct, frozen=True):
    """A delimiter roll-up in a scan: every key under ``prefix`` was skipped."""

    prefix: bytes


class ContainerUsage(msgspec.Struct, frozen=True):
    container: int
    generation: int
    active_count: int
    active_bytes: int
    total_count: int
    total_bytes: int  # log file size


class CompactionStatus(msgspec.Struct, frozen=True):
    state: str  # "idle" | "running"
    pending: list[int]
    ongoing: list[int]
    done: list[int]
    last_started: float | None
    last_finished: float | None
    reclaimed_bytes: int


class DamagedNeedle(msgspec.Struct, frozen=True):
    container: int
    generation: int
    offset: int
    key: bytes | None
    reason: str


class DiskFull(Exception):
    """Raised by writes when free space is below the reserve; reads, deletes and compaction go on."""


class CorruptData(Exception):
    """Raised when stored data fails its checksum on read."""


class ObjectStore:
    """Durable object store. Create with ``await ObjectStore.open(path)``."""

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
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

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
    ) -> PutResult:
        raise NotImplementedError

    async def delete(
        self, ns: int, key: bytes, *, clock: int | None = None, timestamp: int | None = None
    ) -> PutResult:
        raise NotImplementedError

    def get(self, ns: int, key: bytes) -> Entry | None:
        raise NotImplementedError

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes:
        raise NotImplementedError

    def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int]:
        raise NotImplementedError

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
        raise NotImplementedError

    def usage(self) -> list[ContainerUsage]:
        raise NotImplementedError

    async def compact(self, containers: list[int] | None = None) -> CompactionStatus:
        raise NotImplementedError

    def compaction_status(self) -> CompactionStatus:
        raise NotImplementedError

    async def scrub(self) -> list[DamagedNeedle]:
        raise NotImplementedError
