"""Needle encoding: the on-disk record of one write (see docs/storage-format.md).

A needle is an 80-byte header, the key, the metadata blob, the data, a CRC32 of the data, and zero
padding up to a multiple of 8 bytes. The header CRC covers the header (with the CRC field zeroed),
the key and the metadata, so a torn or overwritten header is always detected.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import NamedTuple

NEEDLE_MAGIC = b"LFN\x01"
NEEDLE_VERSION = 1
FLAG_TOMBSTONE = 0x0001
MAX_KEY = 2048  # an S3 key (1,024 bytes) plus its bucket and chunk suffixes
MAX_META = 8 * 1024
# Refuse absurd lengths while scanning so that garbage never makes us read gigabytes.
MAX_DATA = 1 << 34

# magic, version, flags, header crc, ns, key len, reserved, meta len, data len,
# clock, timestamp, cindex, cnumber, csize, md5
HEADER = struct.Struct("<4sHHIIHHIQqqIIQ16s")
HEADER_SIZE = HEADER.size  # 80
TRAILER = struct.Struct("<I")
ZERO_MD5 = bytes(16)

LOG_MAGIC = b"LEOFSAVS"
LOG_VERSION = 1
# magic, format version, container, generation, flags, crc32 of the first 28 bytes
LOG_HEADER = struct.Struct("<8sIIQII")
LOG_HEADER_SIZE = LOG_HEADER.size  # 32


class NeedleError(Exception):
    """A needle failed validation; ``reason`` says why."""


class NeedleHeader(NamedTuple):
    """The decoded fixed header of one needle."""

    flags: int
    hcrc: int
    ns: int
    key_len: int
    meta_len: int
    data_len: int
    clock: int
    timestamp: int
    cindex: int
    cnumber: int
    csize: int
    md5: bytes

    @property
    def tombstone(self) -> bool:
        return bool(self.flags & FLAG_TOMBSTONE)

    @property
    def total_len(self) -> int:
        return needle_len(self.key_len, self.meta_len, self.data_len)

    @property
    def data_start(self) -> int:
        """Offset of the data relative to the start of the needle."""
        return HEADER_SIZE + self.key_len + self.meta_len


class Needle(NamedTuple):
    """A needle read back from a log (data not included)."""

    offset: int
    header: NeedleHeader
    key: bytes
    meta: bytes
    data_crc: int

    @property
    def data_offset(self) -> int:
        return self.offset + self.header.data_start

    @property
    def end(self) -> int:
        return self.offset + self.header.total_len


def needle_len(key_len: int, meta_len: int, data_len: int) -> int:
    """Total on-disk length of a needle, padding included."""
    raw = HEADER_SIZE + key_len + meta_len + data_len + TRAILER.size
    return (raw + 7) & ~7


def _header_crc(header: bytes, key: bytes, meta: bytes) -> int:
    crc = zlib.crc32(header[0:8])
    crc = zlib.crc32(header[12:HEADER_SIZE], crc)
    crc = zlib.crc32(key, crc)
    return zlib.crc32(meta, crc)


def encode_needle(
    *,
    ns: int,
    key: bytes,
    meta: bytes,
    data: bytes | memoryview,
    clock: int,
    timestamp: int,
    tombstone: bool = False,
    cindex: int = 0,
    cnumber: int = 0,
    csize: int = 0,
    md5: bytes = ZERO_MD5,
    data_crc: int | None = None,
) -> tuple[list[bytes | memoryview], int, int]:
    """Encode a needle; returns (buffers to write in order, total length, data CRC)."""
    if len(key) > MAX_KEY:
        raise ValueError(f"key longer than {MAX_KEY} bytes")
    if len(meta) > MAX_META:
        raise ValueError(f"metadata longer than {MAX_META} bytes")
    if len(md5) != 16:
        raise ValueError("md5 must be 16 bytes")
    flags = FLAG_TOMBSTONE if tombstone else 0
    fields = (ns, len(key), 0, len(meta), len(data), clock, timestamp, cindex, cnumber, csize, md5)
    header = HEADER.pack(NEEDLE_MAGIC, NEEDLE_VERSION, flags, 0, *fields)
    hcrc = _header_crc(header, key, meta)
    header = HEADER.pack(NEEDLE_MAGIC, NEEDLE_VERSION, flags, hcrc, *fields)
    crc = zlib.crc32(data) if data_crc is None else data_crc
    total = needle_len(len(key), len(meta), len(data))
    pad = total - (HEADER_SIZE + len(key) + len(meta) + len(data) + TRAILER.size)
    tail = TRAILER.pack(crc) + bytes(pad)
    return [header, key, meta, data, tail], total, crc


def decode_header(buf: bytes) -> NeedleHeader:
    """Parse and sanity-check a fixed header (the header CRC is checked by ``check_header_crc``)."""
    if len(buf) < HEADER_SIZE:
        raise NeedleError("short header")
    magic, version, flags, hcrc, ns, klen, _res, mlen, dlen, clock, ts, ci, cn, cs, md5 = HEADER.unpack_from(
        buf
    )
    if magic != NEEDLE_MAGIC:
        raise NeedleError("bad magic")
    if version != NEEDLE_VERSION:
        raise NeedleError(f"unknown needle version {version}")
    if klen > MAX_KEY or mlen > MAX_META or dlen > MAX_DATA:
        raise NeedleError("length out of range")
    return NeedleHeader(flags, hcrc, ns, klen, mlen, dlen, clock, ts, ci, cn, cs, md5)


def check_header_crc(raw_header: bytes, key: bytes, meta: bytes, hcrc: int) -> bool:
    """True when the stored header CRC matches the header, key and metadata."""
    return _header_crc(raw_header[:HEADER_SIZE], key, meta) == hcrc


_U32 = 1 << 32
# Clocks stay below the i64 limit with room to spare: the writer's own clocks count up by one from
# the largest it has seen, so a clock at the limit would make every later write fail.
_MAX_CLOCK = (1 << 63) - (1 << 40)


def check_write(
    key: bytes,
    meta: bytes = b"",
    md5: bytes | None = None,
    *,
    ns: int = 0,
    clock: int | None = None,
    timestamp: int | None = None,
    cindex: int = 0,
    cnumber: int = 0,
    csize: int = 0,
) -> None:
    """Raise ValueError for a write the needle format (or the index) cannot hold.

    Checked before the write joins a batch: a field out of range must fail its own write, not the
    group commit it would share with others.
    """
    if len(key) > MAX_KEY:
        raise ValueError(f"key longer than {MAX_KEY} bytes")
    if len(meta) > MAX_META:
        raise ValueError(f"metadata longer than {MAX_META} bytes")
    if md5 is not None and len(md5) != 16:
        raise ValueError("md5 must be 16 bytes")
    if not (0 <= ns < _U32 and 0 <= cindex < _U32 and 0 <= cnumber < _U32 and 0 <= csize < 1 << 63):
        raise ValueError("ns, cindex, cnumber or csize out of range")
    if (clock is not None and not 0 <= clock < _MAX_CLOCK) or (timestamp is not None and not 0 <= timestamp < 1 << 63):
        raise ValueError("clock or timestamp out of range")


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """Read exactly ``n`` bytes at ``offset`` (fewer only at end of file)."""
    buf = os.pread(fd, n, offset)
    if len(buf) == n or not buf:
        return buf
    parts = [buf]
    got = len(buf)
    while got < n:
        more = os.pread(fd, n - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


# How much to read speculatively with the header so that small needles cost one pread.
_READ_AHEAD = 64 * 1024


class DataCrcError(NeedleError):
    """The header is sound but the data fails its CRC; the needle's extent is still known."""

    def __init__(self, needle: Needle) -> None:
        super().__init__("data checksum mismatch")
        self.needle = needle


def read_needle(fd: int, offset: int, end: int, *, verify_data: bool = True) -> Needle:
    """Read and validate the needle at ``offset`` of a log whose valid bytes end at ``end``.

    Raises NeedleError if the header, its CRC or the lengths fail, and DataCrcError when
    ``verify_data`` and the data CRC fails. Without ``verify_data`` the data is not read at all.
    """
    if offset + HEADER_SIZE > end:
        raise NeedleError("truncated header")
    first = pread_exact(fd, min(_READ_AHEAD, end - offset), offset)
    header = decode_header(first)
    total = header.total_len
    if offset + total > end:
        raise NeedleError("truncated needle")
    dstart = header.data_start
    need = total if verify_data else dstart
    body = first if need <= len(first) else first + pread_exact(fd, need - len(first), offset + len(first))
    if len(body) < need:
        raise NeedleError("truncated needle")
    kend = HEADER_SIZE + header.key_len
    key = body[HEADER_SIZE:kend]
    meta = body[kend:dstart]
    if not check_header_crc(body, key, meta, header.hcrc):
        raise NeedleError("header checksum mismatch")
    tpos = dstart + header.data_len
    if tpos + TRAILER.size <= len(body):
        (crc,) = TRAILER.unpack_from(body, tpos)
    else:
        (crc,) = TRAILER.unpack(pread_exact(fd, TRAILER.size, offset + tpos))
    needle = Needle(offset, header, key, meta, crc)
    if verify_data and zlib.crc32(memoryview(body)[dstart:tpos]) != crc:
        raise DataCrcError(needle)
    return needle


def encode_log_header(container: int, generation: int) -> bytes:
    """The 32-byte header that starts every container log."""
    head = LOG_HEADER.pack(LOG_MAGIC, LOG_VERSION, container, generation, 0, 0)
    return LOG_HEADER.pack(LOG_MAGIC, LOG_VERSION, container, generation, 0, zlib.crc32(head[:28]))


def check_log_header(buf: bytes, container: int, generation: int) -> bool:
    """True when ``buf`` starts with a valid log header for this container and generation."""
    if len(buf) < LOG_HEADER_SIZE:
        return False
    magic, version, c, g, _flags, crc = LOG_HEADER.unpack_from(buf)
    return (
        magic == LOG_MAGIC
        and version == LOG_VERSION
        and (c, g) == (container, generation)
        and crc == zlib.crc32(buf[:28])
    )
