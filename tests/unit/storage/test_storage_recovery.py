"""Torn tails and SIGKILL crashes: everything acknowledged survives, nothing half-written appears."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from leofs.storage.model import Entry
from leofs.storage.needle import needle_len
from leofs.storage.store import ObjectStore

HELPER = Path(__file__).with_name("crash_writer.py")


def test_torn_tail(tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    ops: list[tuple[bytes, bytes | None, int]] = []  # key, value (None: delete), needle end

    async def build() -> None:
        s = await ObjectStore.open(src, containers=1, sync=False, reserve_bytes=0)
        for _ in range(120):
            key = b"k%d" % rng.randrange(30)
            if rng.random() < 0.2:
                r = await s.delete(0, key)
                ops.append((key, None, r.entry.data_offset - 80 - len(key) + needle_len(len(key), 0, 0)))
            else:
                val = os.urandom(rng.randrange(0, 3000))
                r = await s.put(0, key, val)
                start = r.entry.data_offset - 80 - len(key)
                ops.append((key, val, start + needle_len(len(key), 0, len(val))))
        await s.close()

    asyncio.run(build())
    log = next((src / "avs").glob("*.log"))
    size = log.stat().st_size
    assert ops[-1][2] == size
    for trial in range(12):
        cut = rng.randrange(32, size + 1)
        d = tmp_path / f"t{trial}"
        shutil.copytree(src, d)
        tlog = d / "avs" / log.name
        with open(tlog, "r+b") as f:
            f.truncate(cut)
            if trial % 2:
                f.seek(cut)
                f.write(os.urandom(rng.randrange(1, 500)))
        expect: dict[bytes, bytes] = {}
        for key, val, end in ops:
            if end <= cut:
                if val is None:
                    expect.pop(key, None)
                else:
                    expect[key] = val

        async def check(d: Path = d, tlog: Path = tlog, expect: dict[bytes, bytes] = expect, cut: int = cut) -> None:
            s = await ObjectStore.open(d, sync=False, reserve_bytes=0)
            got = {}
            for e in s.scan(0, limit=100000):
                assert isinstance(e, Entry)
                got[e.key] = await s.read(e)
            assert got == expect
            good = max([end for _k, _v, end in ops if end <= cut], default=32)
            assert tlog.stat().st_size == good  # the torn tail is cut off
            await s.put(0, b"after", b"ok")
            await s.close()
            s = await ObjectStore.open(d, sync=False, reserve_bytes=0)
            e = s.get(0, b"after")
            assert e is not None and await s.read(e) == b"ok"
            assert await s.scrub() == []
            await s.close()

        asyncio.run(check())


def _parse(lines: list[str]) -> tuple[dict[bytes, tuple[int, bytes | None]], set[bytes]]:
    """Acknowledged final state per key (clock, value or None) and keys with an op in flight."""
    acked: dict[bytes, tuple[int, bytes | None]] = {}
    inflight: set[bytes] = set()
    for line in lines:
        parts = line.split()
        if not parts or (len(parts) < 3):
            continue
        kind, key = parts[0], parts[1].encode()
        if kind == "BEGIN":
            inflight.add(key)
        elif kind == "PUT" and len(parts) == 4:
            acked[key] = (int(parts[2]), parts[3].encode())
            inflight.discard(key)
        elif kind == "DEL":
            acked[key] = (int(parts[2]), None)
            inflight.discard(key)
    return acked, inflight


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_crash(tmp_path: Path) -> None:
    rng = random.Random()
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(HELPER), str(tmp_path), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "READY"
        lines: list[str] = []
        # Drain stdout continuously so the writers never block on a full pipe.
        reader = threading.Thread(target=lines.extend, args=(proc.stdout,))
        reader.start()
        time.sleep(rng.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        acked, inflight = _parse(lines)
        assert len(acked) > 10, "the writer acknowledged too little to test anything"

        async def check(acked: dict[bytes, tuple[int, bytes | None]] = acked,
                        inflight: set[bytes] = inflight) -> None:  # fmt: skip
            s = await ObjectStore.open(tmp_path, reserve_bytes=0)
            for key, (clock, val) in acked.items():
                if key in inflight:
                    continue  # a later op on this key was in flight: either outcome is fine
                e = s.get(0, key)
                assert e is not None and e.clock == clock, key
                if val is None:
                    assert e.tombstone
                else:
                    assert not e.tombstone and hashlib.sha256(await s.read(e)).hexdigest().encode() == val
            assert await s.scrub() == []
            await s.close()

        asyncio.run(check())


def test_rebuild_keeps_the_needles_after_a_damaged_one(tmp_path: Path) -> None:
    """A flipped bit in one needle's data must not cost the needles after it when the index is
    rebuilt, nor bring back an older version of the damaged key."""
    from leofs.storage.model import CorruptData

    async def build() -> int:
        s = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        await s.put(0, b"a", b"old a" * 20)
        r = await s.put(0, b"a", b"new a" * 20)
        await s.put(0, b"b", b"b" * 100)
        await s.put(0, b"c", b"c" * 100)
        await s.close()
        return r.entry.data_offset

    offset = asyncio.run(build())
    log = next((tmp_path / "avs").glob("*.log"))
    size = log.stat().st_size
    with open(log, "r+b") as f:
        f.seek(offset + 3)
        byte = f.read(1)
        f.seek(offset + 3)
        f.write(bytes([byte[0] ^ 0x01]))
    (tmp_path / "index.sqlite3").unlink()  # the index is lost: rebuilt from the log

    async def check() -> None:
        s = await ObjectStore.open(tmp_path, sync=False, reserve_bytes=0)
        for key, value in ((b"b", b"b" * 100), (b"c", b"c" * 100)):
            e = s.get(0, key)
            assert e is not None and await s.read(e) == value
        e = s.get(0, b"a")
        assert e is not None and e.size == 100
        with pytest.raises(CorruptData):  # never the old version, never silently absent
            await s.read(e)
        assert log.stat().st_size == size  # nothing was cut
        assert len(await s.scrub()) == 1
        await s.close()

    asyncio.run(check())
