"""Needle encoding and decoding."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from leofs.storage.needle import (
    HEADER_SIZE,
    MAX_KEY,
    DataCrcError,
    NeedleError,
    encode_needle,
    needle_len,
    read_needle,
)


def _write(tmp_path: Path, blob: bytes) -> int:
    fd = os.open(tmp_path / "n", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    os.write(fd, blob)
    return fd


def _needle(**kw: object) -> bytes:
    args: dict[str, object] = dict(ns=1, key=b"k\xc3\xa9y", meta=b"m" * 10, data=b"d" * 33, clock=5, timestamp=7)
    args.update(kw)
    bufs, total, _crc = encode_needle(**args)  # type: ignore[arg-type]
    blob = b"".join(bytes(b) for b in bufs)
    assert len(blob) == total and total % 8 == 0
    return blob


def test_round_trip(tmp_path: Path) -> None:
    blob = _needle(cindex=3, cnumber=4, csize=5, md5=b"x" * 16)
    fd = _write(tmp_path, blob)
    n = read_needle(fd, 0, len(blob))
    h = n.header
    assert (h.ns, n.key, n.meta, h.data_len, h.clock, h.timestamp) == (1, b"k\xc3\xa9y", b"m" * 10, 33, 5, 7)
    assert (h.cindex, h.cnumber, h.csize, h.md5, h.tombstone) == (3, 4, 5, b"x" * 16, False)
    assert n.data_crc == zlib.crc32(b"d" * 33)
    assert n.data_offset == HEADER_SIZE + 4 + 10
    assert n.end == len(blob) == needle_len(4, 10, 33)
    os.close(fd)


def test_tombstone_flag(tmp_path: Path) -> None:
    blob = _needle(data=b"", tombstone=True)
    fd = _write(tmp_path, blob)
    assert read_needle(fd, 0, len(blob)).header.tombstone
    os.close(fd)


def test_limits() -> None:
    _needle(key=b"k" * MAX_KEY)
    with pytest.raises(ValueError):
        _needle(key=b"k" * (MAX_KEY + 1))
    with pytest.raises(ValueError):
        _needle(meta=b"m" * (8 * 1024 + 1))


@pytest.mark.parametrize("pos", [0, 5, 9, 20, 40, 79, 82, 90])
def test_header_damage_detected(tmp_path: Path, pos: int) -> None:
    blob = bytearray(_needle())
    blob[pos] ^= 0x01
    fd = _write(tmp_path, bytes(blob))
    with pytest.raises(NeedleError):
        read_needle(fd, 0, len(blob))
    os.close(fd)


def test_data_damage_detected(tmp_path: Path) -> None:
    blob = bytearray(_needle())
    blob[HEADER_SIZE + 14 + 3] ^= 0x80
    fd = _write(tmp_path, bytes(blob))
    with pytest.raises(DataCrcError):
        read_needle(fd, 0, len(blob))
    # Without data verification the header still reads (compaction and replay of big logs).
    assert read_needle(fd, 0, len(blob), verify_data=False).key == b"k\xc3\xa9y"
    os.close(fd)


def test_truncated(tmp_path: Path) -> None:
    blob = _needle()
    for cut in (10, HEADER_SIZE, len(blob) - 1):
        fd = _write(tmp_path, blob[:cut])
        with pytest.raises(NeedleError):
            read_needle(fd, 0, cut)
        os.close(fd)
