"""Disk full on a small tmpfs: writes are refused before the disk fills; the rest keeps working."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from leofs.storage.model import DiskFull, Entry
from leofs.storage.store import ObjectStore


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_disk_full(small_fs: Path) -> None:
    d = small_fs / "store"

    async def main() -> None:
        s = await ObjectStore.open(d, containers=8, reserve_bytes=1536 * 1024)
        stored: dict[bytes, bytes] = {}
        refused = 0
        for i in range(200):
            key = b"obj%03d" % i
            val = os.urandom(64 * 1024)
            try:
                await s.put(0, key, val)
                stored[key] = val
            except DiskFull:
                refused += 1
                if refused > 5:
                    break
        assert refused and stored
        st = os.statvfs(small_fs)
        assert st.f_bavail * st.f_frsize > 512 * 1024  # refused before the disk actually filled
        # Reads still work.
        for k, v in stored.items():
            e = s.get(0, k)
            assert e is not None and await s.read(e) == v
        # Deletes still work, and compaction frees the space they release.
        doomed = list(stored)[::2]
        for k in doomed:
            assert (await s.delete(0, k, clock=None)).applied
            del stored[k]
        s.tombstone_grace = 0.0
        await s.compact()
        assert s.compaction_status().reclaimed_bytes > 0
        r = await s.put(0, b"after", b"y" * 65536)
        assert r.applied
        stored[b"after"] = b"y" * 65536
        assert await s.scrub() == []
        await s.close()
        s = await ObjectStore.open(d, reserve_bytes=1024 * 1024)
        got = {}
        for e in s.scan(0, limit=10000):
            assert isinstance(e, Entry)
            got[e.key] = await s.read(e)
        assert got == stored
        await s.close()

    asyncio.run(main())


@pytest.mark.slow
def test_enospc_without_reserve(small_fs: Path) -> None:
    """With no reserve the write itself hits ENOSPC: the batch fails cleanly and nothing is corrupted."""
    d = small_fs / "store"

    async def main() -> None:
        s = await ObjectStore.open(d, containers=1, reserve_bytes=0)
        stored: dict[bytes, bytes] = {}
        with pytest.raises(DiskFull):
            for i in range(200):
                val = os.urandom(100 * 1024)
                await s.put(0, b"k%03d" % i, val)
                stored[b"k%03d" % i] = val
        assert await s.scrub() == []
        await s.close()
        s = await ObjectStore.open(d, reserve_bytes=0)
        got = {}
        for e in s.scan(0, limit=10000):
            assert isinstance(e, Entry)
            got[e.key] = await s.read(e)
        assert got == stored
        await s.close()

    asyncio.run(main())
