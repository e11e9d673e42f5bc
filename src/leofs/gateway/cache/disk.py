"""The disk tier: one file per cached value in a directory of its own, indexed by an LRU in memory.

A file is written to a temporary name and renamed into place, never fsynced (it is a cache: a
crash loses entries, never data). Each file carries a header naming its key, clock, ETag and size,
and CRC32s of the header and the body; a file that is short, damaged or about another key or
version is a miss and is removed. The directory is emptied at start (the index lives in memory).
Files are private (``fsmode``): they hold object data.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import msgspec

from leofs.fsmode import FILE_MODE, make_private_dir
from leofs.gateway.cache.lru import ShardedLRU

log = logging.getLogger("leofs.gateway.cache")

MAGIC = b"LFC1"
#: magic, header length, body length, header CRC32, body CRC32
_PREFIX = struct.Struct(">4sIQII")


class FileHeader(msgspec.Struct, array_like=True, frozen=True):
    """What a cache file says about itself."""

    key: bytes
    clock: int
    etag: str
    size: int
    extra: bytes  # the cached record (the storage entry), opaque here


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(FileHeader)


class DiskFile(msgspec.Struct, frozen=True):
    """The index's record of one file."""

    path: str
    clock: int
    size: int


class DiskTier:
    """Values on disk under ``directory``, at most ``capacity`` bytes in all."""

    def __init__(self, directory: Path, capacity: int, shards: int = 16) -> None:
        self.directory = directory
        self.lru: ShardedLRU[DiskFile] = ShardedLRU(capacity, shards)
        self.corrupt = 0
        self._tmp = threading.local()
        self._clear()

    def _clear(self) -> None:
        make_private_dir(self.directory)
        for child in self.directory.iterdir():
            # only what this tier writes: two-hex-digit fan-out directories
            if child.is_dir() and len(child.name) == 2 and all(c in "0123456789abcdef" for c in child.name):
                shutil.rmtree(child, ignore_errors=True)

    def _path(self, key: bytes) -> Path:
        name = hashlib.sha256(key).hexdigest()
        return self.directory / name[:2] / name[2:]

    def big(self, key: bytes) -> bool:
        """Whether the key's file is large enough to be read in a worker thread."""
        return self.lru.size_of(key) > 256 * 1024

    def fits(self, size: int) -> bool:
        return self.lru.fits(size)

    def write(self, key: bytes, clock: int, etag: str, body: bytes, extra: bytes) -> None:
        """Store ``body`` as the key's value (blocking: call it from a worker thread)."""
        size = len(body)
        if not self.fits(size):
            return
        path = self._path(key)
        header = _encoder.encode(FileHeader(key, clock, etag, size, extra))
        prefix = _PREFIX.pack(MAGIC, len(header), size, zlib.crc32(header), zlib.crc32(body))
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(prefix)
                f.write(header)
                f.write(body)
            os.replace(tmp, path)
        except OSError as exc:  # disk full or gone: the cache does without
            log.warning("disk cache write failed: %s", exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        record = DiskFile(str(path), clock, size)
        for old_key, old in self.lru.put(key, record, size + len(header) + _PREFIX.size):
            if old_key != key:
                self._unlink(old.path)

    def read(self, key: bytes) -> tuple[FileHeader, bytes] | None:
        """The key's header and body, or None (absent, or found damaged and removed)."""
        record = self.lru.get(key)
        if record is None:
            return None
        try:
            with open(record.path, "rb") as f:
                raw = f.read()
        except OSError:
            self.lru.pop_if(key, record)
            return None
        got = _parse(raw)
        if got is None or got[0].key != key or got[0].clock != record.clock:
            self.corrupt += 1
            log.warning("disk cache file %s is damaged: dropped", record.path)
            if self.lru.pop_if(key, record):
                self._unlink(record.path)
            return None
        return got

    def drop(self, key: bytes) -> None:
        record = self.lru.pop(key)
        if record is not None:
            self._unlink(record.path)

    @staticmethod
    def _unlink(path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _parse(raw: bytes) -> tuple[FileHeader, bytes] | None:
    if len(raw) < _PREFIX.size:
        return None
    magic, header_len, body_len, header_crc, body_crc = _PREFIX.unpack_from(raw)
    if magic != MAGIC or len(raw) != _PREFIX.size + header_len + body_len:
        return None
    header_raw = raw[_PREFIX.size : _PREFIX.size + header_len]
    body = raw[_PREFIX.size + header_len :]
    if zlib.crc32(header_raw) != header_crc or zlib.crc32(body) != body_crc:
        return None
    try:
        header = _decoder.decode(header_raw)
    except msgspec.DecodeError:
        return None
    if header.size != body_len:
        return None
    return header, body
