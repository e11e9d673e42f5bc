"""The disk tier: what it writes can be read back; a truncated, damaged or foreign file is a miss
and is removed; files are private; the directory is emptied at start; eviction removes files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leofs.gateway.cache.disk import DiskTier


def files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_round_trip_and_private_files(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "c", 1 << 20, shards=1)
    body = os.urandom(5000)
    tier.write(b"b/k", 7, "etag", body, b"record")
    got = tier.read(b"b/k")
    assert got is not None
    header, data = got
    assert data == body and (header.key, header.clock, header.etag, header.size, header.extra) == (
        b"b/k",
        7,
        "etag",
        5000,
        b"record",
    )
    (path,) = files(tmp_path / "c")
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "c").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("damage", ["truncate", "flip_body", "flip_header", "empty", "other_key"])
def test_a_damaged_file_is_a_miss_and_is_removed(tmp_path: Path, damage: str) -> None:
    tier = DiskTier(tmp_path / "c", 1 << 20, shards=1)
    tier.write(b"b/k", 7, "etag", os.urandom(5000), b"")
    (path,) = files(tmp_path / "c")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-1]
    elif damage == "flip_body":
        raw[-10] ^= 1
    elif damage == "flip_header":
        raw[30] ^= 1
    elif damage == "empty":
        raw = bytearray()
    else:  # a valid file about another key, in this key's place
        other = DiskTier(tmp_path / "o", 1 << 20, shards=1)
        other.write(b"b/other", 7, "etag", b"x" * 5000, b"")
        raw = bytearray(files(tmp_path / "o")[0].read_bytes())
    path.write_bytes(bytes(raw))
    assert tier.read(b"b/k") is None
    assert not path.exists() and b"b/k" not in tier.lru and tier.corrupt == 1


def test_a_file_of_another_version_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "c", 1 << 20, shards=1)
    tier.write(b"b/k", 7, "etag", b"old" * 100, b"")
    (path,) = files(tmp_path / "c")
    old = path.read_bytes()
    tier.write(b"b/k", 8, "etag", b"new" * 100, b"")
    path.write_bytes(old)  # the index says clock 8
    assert tier.read(b"b/k") is None


def test_eviction_removes_files_and_start_empties_the_directory(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "c", 3000, shards=1)
    for i in range(5):
        tier.write(f"b/{i}".encode(), i, "e", b"x" * 1000, b"")
    assert len(files(tmp_path / "c")) == len(tier.lru) == 2  # each file is 1000 bytes plus its header: two fit in 3000
    assert tier.read(b"b/0") is None and tier.read(b"b/4") is not None
    (tmp_path / "c" / "keep.txt").write_text("not ours")
    DiskTier(tmp_path / "c", 1 << 20, shards=1)
    assert files(tmp_path / "c") == [tmp_path / "c" / "keep.txt"]


def test_drop(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "c", 1 << 20, shards=1)
    tier.write(b"b/k", 1, "e", b"data", b"")
    tier.drop(b"b/k")
    assert tier.read(b"b/k") is None and files(tmp_path / "c") == []
