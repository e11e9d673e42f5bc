"""Storage engine benchmark: durable puts/s for 4 KiB and 1 MiB objects, and syncs per write.

Run: ``python benchmarks/storage.py [--seconds 3] [--dir /path/on/the/disk/to/test]``.
Every put is durable (fdatasync before the acknowledgement); group commit lets concurrent puts share
syncs, which the "syncs/write" column shows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from leofs.storage.store import ObjectStore


async def bench(root: Path, size: int, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """Returns (puts/s, MiB/s, fdatasyncs per write)."""
    d = Path(tempfile.mkdtemp(dir=root))
    s = await ObjectStore.open(d, reserve_bytes=0)
    payload = os.urandom(size)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await s.put(0, b"w%d-%d" % (w, i), payload)
            i += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    syncs_per_write = s.stats.syncs / max(s.stats.writes, 1)
    await s.close()
    shutil.rmtree(d, ignore_errors=True)
    return done / elapsed, done * size / elapsed / 2**20, syncs_per_write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    print(f"durable puts, 8 containers, {args.seconds:.0f} s per case, dir {args.dir}")
    print(f"{'object':>8} {'writers':>8} {'puts/s':>10} {'MiB/s':>9} {'syncs/write':>12}")
    for size, label in ((4096, "4 KiB"), (1 << 20, "1 MiB")):
        for conc in (1, 16):
            rate, mib, spw = asyncio.run(bench(args.dir, size, conc, args.seconds))
            print(f"{label:>8} {conc:>8} {rate:>10.0f} {mib:>9.1f} {spw:>12.3f}")


if __name__ == "__main__":
    main()
