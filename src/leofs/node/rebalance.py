"""A storage node's half of ``leofs adm rebalance``: push the entries whose owners changed.

While the node's rings differ (current = the new ring, previous = the old one) and the node was in
the previous ring, :class:`Mover` walks every entry of the store (every namespace, tombstones
included, in (namespace, key) order) and sends each new owner of a key the version this node holds,
with its clock: a replica write never replaces a newer version, so a client write that reached the
new owners first always wins.

Two passes, so that no copy is lost when the old replicas differ (a write one of them missed):

1. the key's old primary sends it to every node that gained the key;
2. every old owner asks each gaining node for its clock (``GET /meta``) and sends what is missing or
   older there. This also catches writes made through the old ring while the passes ran.

Progress is a durable checkpoint (``rebalance.json`` in the data directory: the rings it belongs to,
pass, namespace and last key done, counters), written after every batch, so a node killed in the
middle resumes where it was. A copy for a node that is down or fails goes to the node's durable
repair queue instead (sent once the node is back), so one dead node does not hold the rebalance.
The pushes are throttled to ``rate`` bytes/s. The manager polls
``rebalance-progress`` and settles the rings once every node of the previous ring reports done.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from leofs.fsmode import make_private
from leofs.internal.messages import RepairTask
from leofs.node.coordinator import Coordinator
from leofs.node.membership import NodeCluster
from leofs.ring import Member, RingPair
from leofs.storage.model import Entry, StaleEntry
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.node.rebalance")

DEFAULT_RATE = 50 * 1024 * 1024
"""Bytes per second a node pushes during a rebalance unless ``leofs adm rebalance --rate`` says otherwise."""

BATCH = 200
POLL = 0.5
RETRY = 1.0  # after a failed pass


class Checkpoint(msgspec.Struct):
    """The durable state of this node's part of one rebalance."""

    ring: str  # "current:previous" hashes the work is for
    phase: int = 1  # 1, 2; 3 = done
    ns: int | None = None  # namespace in progress (None: not started)
    after: str = ""  # urlsafe base64 of the last key done in ``ns``
    scanned: int = 0
    objects: int = 0
    bytes: int = 0
    deferred: int = 0  # copies left to the repair queue (target down or failing)
    started: float = 0.0
    finished: float = 0.0
    rate: int = DEFAULT_RATE

    @property
    def done(self) -> bool:
        return self.phase >= 3


class Mover:
    """Runs this node's rebalance passes in the background (``start``/``stop``)."""

    def __init__(self, name: str, store: ObjectStore, cluster: NodeCluster, coordinator: Coordinator,
                 path: Path) -> None:  # fmt: skip
        self.name = name
        self.store = store
        self.cluster = cluster
        self.coordinator = coordinator
        self.path = path
        self.state: Checkpoint | None = self._load()
        self.rate = self.state.rate if self.state is not None else DEFAULT_RATE
        self._task: asyncio.Task[None] | None = None
        self._debt = 0.0  # bytes sent ahead of the rate (a token bucket)
        self._last = time.monotonic()

    # -- persistence ----------------------------------------------------------------------------------
    def _load(self) -> Checkpoint | None:
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=Checkpoint)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring unreadable rebalance checkpoint %s: %s", self.path, exc)
            return None

    def _save(self, state: Checkpoint) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(state))
            f.flush()
            os.fsync(f.fileno())
        make_private(tmp)
        os.replace(tmp, self.path)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                rings = self.cluster.rings
                if rings is not None and rings.rebalancing and self.name in rings.previous:
                    await self._run(rings)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the mover alive: the next poll resumes from the checkpoint
                log.exception("rebalance pass failed; retrying")
                await asyncio.sleep(RETRY)
            await asyncio.sleep(POLL)

    def set_rate(self, rate: int) -> None:
        """Change the throttle (bytes/s, > 0); kept in the checkpoint."""
        self.rate = rate
        if self.state is not None:
            self.state.rate = rate
            self._save(self.state)

    # -- the passes -----------------------------------------------------------------------------------
    async def _run(self, rings: RingPair) -> None:
        key = ":".join(rings.hashes)
        state = self.state
        if state is None or state.ring != key:
            state = self.state = Checkpoint(ring=key, started=time.time(), rate=self.rate)
            self._save(state)
            log.info("rebalance %s: starting", key)
        while not state.done:
            if self.cluster.rings is None or self.cluster.rings.hashes != rings.hashes:
                return  # the rings changed (settled, or another rebalance): the loop looks again
            if state.ns is None:
                state.ns = self.store.next_namespace(-1)
            items: list[Entry] = []
            if state.ns is not None:
                after = base64.urlsafe_b64decode(state.after) if state.after else b""
                items = [e for e in self.store.scan(state.ns, b"", start_after=after, limit=BATCH,
                                                    include_tombstones=True) if isinstance(e, Entry)]  # fmt: skip
            if state.ns is None or not items:
                nxt = None if state.ns is None else self.store.next_namespace(state.ns)
                if nxt is None:  # this pass is over
                    state.phase += 1
                    state.ns, state.after = None, ""
                    if state.done:
                        state.finished = time.time()
                        log.info("rebalance %s: done (%d objects, %d bytes sent)", key, state.objects, state.bytes)
                else:
                    state.ns, state.after = nxt, ""
                self._save(state)
                continue
            for entry in items:
                await self._move(rings, entry, state)
                state.scanned += 1
            state.after = base64.urlsafe_b64encode(items[-1].key).decode()
            self._save(state)

    async def _move(self, rings: RingPair, entry: Entry, state: Checkpoint) -> None:
        old = rings.previous.redundancy(entry.key)
        if not old or all(m.name != self.name for m in old):
            return
        if state.phase == 1 and old[0].name != self.name:
            return
        had = {m.name for m in old}
        for target in rings.current.redundancy(entry.key):
            if target.name in had or target.name == self.name:
                continue
            if not self.cluster.running(target):
                # a node that is down gets the copy from this node's repair queue once it is back
                # (durable), rather than holding the whole rebalance
                await self.coordinator.enqueue([RepairTask(entry.ns, entry.key, target.name, entry.clock)])
                state.deferred += 1
                continue
            try:
                sent = await self._push(target, entry)
            except (aiohttp.ClientError, TimeoutError, OSError, ConnectionError) as exc:
                log.info("rebalance: push of %r to %s failed (%s); queued for repair", entry.key, target.name, exc)
                await self.coordinator.enqueue([RepairTask(entry.ns, entry.key, target.name, entry.clock)])
                state.deferred += 1
                continue
            if sent:
                state.objects += 1
                state.bytes += sent
                await self._throttle(sent)

    async def _push(self, target: Member, entry: Entry) -> int:
        """Send ``entry`` to ``target`` unless it holds that version or a newer one; bytes sent (0: none)."""
        there = await self._remote_clock(target, entry)
        if there is not None and there >= entry.clock:
            return 0
        local = self.store.get(entry.ns, entry.key)
        if local is None or local.clock != entry.clock:
            return 0  # overwritten or compacted since the scan: the newer version went to the new ring
        try:
            sent = await self.coordinator.transfer.send(target.name, local)
        except StaleEntry:
            return 0
        return max(1, sent)  # a tombstone counts as sent

    async def _remote_clock(self, target: Member, entry: Entry) -> int | None:
        there = await self.coordinator.transfer.remote_meta(target.name, entry.ns, entry.key)
        return None if there is None else there.clock

    async def _throttle(self, sent: int) -> None:
        """Keep the pushes at ``rate`` bytes/s on average: sleep off the bytes sent ahead of it, in
        short steps, so that a new rate (``rebalance-progress {rate}``) applies at once even after
        a large chunk."""
        now = time.monotonic()
        self._debt = max(0.0, self._debt - (now - self._last) * self.rate) + sent
        self._last = now
        while self._debt > self.rate * 0.05:
            step = min(0.25, self._debt / self.rate)
            await asyncio.sleep(step)
            now = time.monotonic()
            self._debt = max(0.0, self._debt - (now - self._last) * self.rate)
            self._last = now

    # -- status ---------------------------------------------------------------------------------------
    def progress(self) -> dict[str, Any]:
        """What ``rebalance-progress`` answers: the checkpoint, the node's entry count and an estimate."""
        rings = self.cluster.rings
        current = ":".join(rings.hashes) if rings is not None else ""
        state = self.state
        total = sum(u.active_count for u in self.store.usage())
        out: dict[str, Any] = {"node": self.name, "ring": current, "rate": self.rate, "entries": total,
                               "participant": bool(rings and rings.rebalancing and self.name in rings.previous)}
        if state is None or state.ring != current:
            out.update(done=not out["participant"], phase=0, scanned=0, objects=0, bytes=0, eta=None)
            return out
        elapsed = (state.finished or time.time()) - state.started
        work = 2 * max(total, 1)  # two passes over the entries
        left = max(0, work - state.scanned)
        speed = state.scanned / elapsed if elapsed > 0 else 0.0
        out.update(done=state.done, phase=min(state.phase, 2), scanned=state.scanned, objects=state.objects,
                   bytes=state.bytes, deferred=state.deferred, elapsed=round(elapsed, 1),
                   eta=0.0 if state.done else (round(left / speed, 1) if speed > 0 else None))  # fmt: skip
        return out
