"""Copying one key's version between this node and its other replicas: the steps recover-file,
recover-node, recover-consistency and the repair of damaged needles are made of.

The engine's rule decides: the version with the latest clock wins, tombstones included (a replica
write with an older or equal clock is not applied), so every copy here is safe to repeat and to race
with client writes: a newer write that lands meanwhile simply stays.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from leofs.node.coordinator import Coordinator
from leofs.node.transfer import VersionGone
from leofs.storage.model import CorruptData, Entry, StaleEntry

log = logging.getLogger("leofs.node.replica_sync")


def stub(ns: int, key: bytes, clock: int, tombstone: bool, timestamp: int) -> Entry:
    """An Entry carrying only what a pull needs (which version of which key; size unknown)."""
    return Entry(ns, key, clock, timestamp, tombstone, 0, b"", b"", 0, 0, 0, 0, 0, 0, 0)


class ReplicaSync:
    """Pull, push and compare one key, through a node's coordinator (its client, store and ring)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.store = coordinator.store
        self.name = coordinator.name

    async def pull(self, source: str, ns: int, key: bytes, clock: int, tombstone: bool, timestamp: int) -> int:
        """Store ``source``'s version here (its bytes checked against their CRC); the bytes copied."""
        local = await self.coordinator.transfer.pull(source, stub(ns, key, clock, tombstone, timestamp))
        return 0 if tombstone or local is None else local.size

    async def push(self, target: str, ns: int, key: bytes) -> int:
        """Send this node's current version of the key to ``target``; the bytes sent."""
        for _ in range(3):
            local = self.store.get(ns, key)
            if local is None:
                return 0
            try:
                return await self.coordinator.transfer.send(target, local)
            except StaleEntry:
                continue  # overwritten or compacted meanwhile: look again
        raise ConnectionError(f"{key!r} kept changing while it was pushed")

    async def sync_key(self, ns: int, key: bytes) -> dict[str, Any]:
        """recover-file for one key: read every replica's entry, pick the winner (latest clock,
        tombstones count), bring this node and every replica that lacks it or is older up to it."""
        rings = self.coordinator.cluster.rings
        if rings is None:
            raise ConnectionError("no ring yet")
        owners = [m.name for m in rings.write_nodes(key)]
        sources = [m.name for m in rings.read_nodes(key)]
        others = [n for n in sources if n != self.name]
        answers = await asyncio.gather(*(self.coordinator.transfer.remote_meta(n, ns, key) for n in others),
                                       return_exceptions=True)  # fmt: skip
        held: dict[str, Entry | None] = {self.name: self.store.get(ns, key)}
        unreachable = []
        for n, a in zip(others, answers, strict=True):
            if isinstance(a, BaseException):
                unreachable.append(n)
            else:
                held[n] = a
        present = [(e.clock, n) for n, e in held.items() if e is not None]
        result: dict[str, Any] = {"ns": ns, "key": key.decode(errors="replace"), "unreachable": unreachable,
                                  "repaired": [], "clock": None, "tombstone": None}  # fmt: skip
        if not present:
            return result
        clock, source = max(present)
        winner = held[source]
        assert winner is not None
        result.update(clock=clock, tombstone=winner.tombstone, cnumber=winner.cnumber)
        mine = held[self.name]
        if source != self.name and (mine is None or mine.clock < clock):
            await self.pull(source, ns, key, clock, winner.tombstone, winner.timestamp)
            result["repaired"].append(self.name)
        for n in owners:
            e = held.get(n, winner)
            if n != self.name and n not in unreachable and (e is None or e.clock < clock):
                await self.push(n, ns, key)
                result["repaired"].append(n)
        return result

    async def repair_damaged(self, entry: Entry) -> str:
        """Replace a damaged local needle of ``entry`` with a healthy replica's copy of the same
        version (or that replica's newer one). Answers what was done."""
        rings = self.coordinator.cluster.rings
        if rings is None:
            raise ConnectionError("no ring yet")
        for m in rings.read_nodes(entry.key):
            if m.name == self.name:
                continue
            try:
                theirs = await self.coordinator.transfer.remote_meta(m.name, entry.ns, entry.key)
                if theirs is None or theirs.clock < entry.clock:
                    continue
                if theirs.clock > entry.clock:
                    await self.coordinator.transfer.pull(m.name, theirs)
                    return f"replaced by the newer version on {m.name}"
                if entry.tombstone:
                    await self.store.repair_put(entry, b"")
                    return "tombstone rewritten"
                _e, data = await self.coordinator.transfer.fetch(m.name, entry)
            except (VersionGone, CorruptData, ConnectionError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("repair of %r: %s could not help (%s)", entry.key, m.name, exc)
                continue
            result = await self.store.repair_put(entry, data)
            return f"rewritten from {m.name}" if result.applied else "a newer version arrived meanwhile"
        raise ConnectionError("no healthy replica of the same or a newer version answered")
