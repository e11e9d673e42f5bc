"""Disk faults for cluster tests: wipe a storage node's data directory, corrupt a needle on disk.

Both act on the files directly, as a lost disk or bit rot would; the node may be running (a needle
corrupted under a running node is found by its next read or scrub)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path


def wipe_data_dir(data_dir: Path) -> None:
    """Remove everything the node stored (objects, index, repair queue, cached ring, checkpoints)."""
    shutil.rmtree(data_dir, ignore_errors=True)


def drop_repair_queue(data_dir: Path) -> None:
    """Delete a (stopped) node's durable repair queue: the writes it would have repaired are lost to it."""
    for suffix in ("", "-wal", "-shm"):
        path = data_dir / f"repair.sqlite3{suffix}"
        if path.exists():
            path.unlink()


def needle_location(data_dir: Path, key: bytes, ns: int = 0) -> tuple[Path, int, int]:
    """(log file, offset of the data, data size) of the key's current needle, from the node's index."""
    db = sqlite3.connect(f"file:{data_dir / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT container, generation, data_offset, size FROM entries WHERE ns=? AND key=?",
                         (ns, key)).fetchone()  # fmt: skip
    finally:
        db.close()
    assert row is not None, f"{key!r} is not in {data_dir}"
    container, generation, offset, size = row
    return data_dir / "avs" / f"{container:06d}.g{generation:06d}.log", offset, size


def corrupt_needle(data_dir: Path, key: bytes, ns: int = 0) -> None:
    """Flip one byte in the middle of the key's stored data (its CRC no longer matches)."""
    log, offset, size = needle_location(data_dir, key, ns)
    assert size > 0, "a tombstone has no data to corrupt"
    at = offset + size // 2
    fd = os.open(log, os.O_RDWR)
    try:
        byte = os.pread(fd, 1, at)
        os.pwrite(fd, bytes([byte[0] ^ 0xFF]), at)
        os.fsync(fd)
    finally:
        os.close(fd)
