"""Helper for the SIGKILL test: concurrent writers print one line per acknowledged operation.

Lines: ``BEGIN key 0`` before an op, then ``PUT key clock sha256`` or ``DEL key clock`` once acked.
Keys are "r<round>-w<writer>-<n>" so that every key belongs to one writer (no cross-writer races).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
from pathlib import Path

from leofs.storage.store import ObjectStore


async def writer(s: ObjectStore, rnd: str, w: int) -> None:
    rng = random.Random()
    while True:
        key = f"r{rnd}-w{w}-{rng.randrange(40)}"
        print("BEGIN", key, 0, flush=True)
        if rng.random() < 0.25:
            r = await s.delete(0, key.encode())
            print("DEL", key, r.entry.clock, flush=True)
        else:
            val = os.urandom(rng.choice([10, 500, 5000, 70000]))
            r = await s.put(0, key.encode(), val)
            print("PUT", key, r.entry.clock, hashlib.sha256(val).hexdigest(), flush=True)
        if rng.random() < 0.02 and w == 0:
            await s.compact([rng.randrange(s.containers)])


async def main() -> None:
    s = await ObjectStore.open(Path(sys.argv[1]), containers=4, reserve_bytes=0)
    print("READY", flush=True)
    await asyncio.gather(*(writer(s, sys.argv[2], w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main())
