"""Quorum writes, deletes and reads on the storage node that a gateway picked (LeoFS's model).

PUT/DELETE: the coordinator assigns the clock, writes locally (when it is in the key's redundancy
list) and to the other replicas in parallel, and answers after W (D) acknowledgements. When fewer
than W (D) replicas are ``running`` it refuses at once. Every replica write that fails or times out,
and every replica that was not running, becomes a durable repair task; nothing is rolled back.

Reads with R > 1 compare the local clock with R-1 other running replicas: a newer copy elsewhere is
pulled and stored locally (read-repair), stale or missing copies get a repair task.

Replicas whose breaker is open (:class:`~leofs.internal.health.NodeHealth`: the last call failed to
reach them) are treated like replicas that are down: a write queues their repair task at once
instead of waiting on them, unless W could not be met without them. Every call to another node is
bounded by its type's timeout (:class:`~leofs.internal.health.CallTimeouts`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from leofs.internal.client import InternalClient
from leofs.internal.health import CallTimeouts, NodeHealth, health_probe
from leofs.internal.messages import PutHeader, RepairTask, Written
from leofs.internal.rpc import RpcClient
from leofs.node.membership import NodeCluster
from leofs.node.repair_queue import RepairQueue
from leofs.node.transfer import Transfer
from leofs.ring import Member
from leofs.storage.model import CorruptData, DiskFull, Entry, PutResult, StaleEntry, WriteConflict
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.node.coordinator")

#: how long a coordinator that has its quorum still waits for the remaining replicas
STRAGGLER_GRACE = 0.05

#: a straggler's repair task (durable before the answer) waits this long: its own write usually
#: lands meanwhile and settles the task, so the data is not sent twice
STRAGGLER_REPAIR_DELAY = 2.0


class Unavailable(Exception):
    """Fewer than the quorum of replicas could be reached (HTTP 503)."""


def now_us() -> int:
    return time.time_ns() // 1000


class Coordinator:
    """Runs the quorum for requests with role ``coordinate``."""

    def __init__(self, name: str, store: ObjectStore, cluster: NodeCluster, client: InternalClient,
                 queue: RepairQueue, *, timeouts: CallTimeouts | None = None, health: NodeHealth | None = None,
                 on_enqueue: Callable[[], None] | None = None, rpc: RpcClient | None = None) -> None:  # fmt: skip
        self.name = name
        self.store = store
        self.cluster = cluster
        self.client = client
        self.queue = queue
        self.timeouts = timeouts or CallTimeouts()
        self.health = health or NodeHealth(health_probe(client, self.timeouts, cluster.address_of))
        cluster.on_back.append(self.health.succeeded)
        #: the calls to the other replicas (replica writes, META, pull, push)
        self.transfer = Transfer(store, cluster, client, self.health, self.timeouts, rpc)
        self.on_enqueue = on_enqueue or (lambda: None)
        self.background: set[asyncio.Task[Any]] = set()
        self._last_clock = 0
        #: set while recover-node rebuilds this node: a key missing here may exist elsewhere
        self.recovering = False

    # -- clocks -------------------------------------------------------------------------------------
    def next_clock(self, ns: int, key: bytes) -> int:
        """A clock newer than anything this node has stored (for the key and overall) and than the
        last one it handed out; microseconds of wall time when the wall clock is ahead."""
        cur = self.store.get(ns, key)
        floor = max(self._last_clock, self.store.last_clock, cur.clock if cur is not None else 0)
        self._last_clock = max(now_us(), floor + 1)
        return self._last_clock

    # -- helpers ------------------------------------------------------------------------------------
    def _targets(self, key: bytes) -> list[Member]:
        rings = self.cluster.rings
        if rings is None:
            raise Unavailable("no ring yet (run `leofs adm start`)")
        return rings.write_nodes(key)

    async def enqueue(self, tasks: list[RepairTask]) -> None:
        if tasks:
            await self.queue.enqueue(tasks)
            self.on_enqueue()

    def _spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _quorum(self, need: int, ns: int, key: bytes, clock: int, local: Awaitable[Entry] | None,
                      remote: dict[str, Callable[[], Awaitable[Entry]]], missed: list[str]) -> Entry:  # fmt: skip
        """Run the local and remote writes; return the first entry once ``need`` succeeded."""

        straggling: set[str] = set()
        full: list[DiskFull] = []  # replicas that refused for lack of space

        async def replica(name: str, call: Callable[[], Awaitable[Entry]]) -> Entry | None:
            try:
                entry = await call()
            except Exception as exc:
                if isinstance(exc, DiskFull):
                    full.append(exc)
                log.info("replica write of %r to %s failed (%s); queued for repair", key, name, exc)
                await self.enqueue([RepairTask(ns, key, name, clock)])
                return None
            if name in straggling:
                await self.queue.settle(ns, key, name, clock)
            return entry

        async def local_write(aw: Awaitable[Entry]) -> Entry | BaseException:
            try:
                return await aw
            except Exception as exc:  # DiskFull, closed store...: counts as a missing ack
                log.warning("local write of %r failed: %s", key, exc)
                return exc

        tasks: list[asyncio.Future[Any]] = []
        if local is not None:
            tasks.append(asyncio.ensure_future(local_write(local)))
        names: dict[asyncio.Future[Any], str] = {}
        for n, c in remote.items():
            names[asyncio.ensure_future(replica(n, c))] = n
        tasks.extend(names)
        # replicas that are down miss the write: their repair tasks are durable before we answer
        noted = asyncio.ensure_future(self.enqueue([RepairTask(ns, key, n, clock) for n in missed]))
        acks: list[Entry] = []
        local_error: BaseException | None = None
        pending = set(tasks)
        mine = tasks[0] if local is not None else None
        # also wait for our own copy (unless it fails): the gateway reads from this same node, so a
        # client reading right after the answer must find the write here (read-after-write)
        while pending and (len(acks) < need or mine in pending):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                result = t.result()
                if isinstance(result, Entry):
                    acks.append(result)
                elif isinstance(result, BaseException):
                    local_error = result
        if pending and len(acks) >= need:
            # Give healthy stragglers a moment: when every replica answers within the grace, a client
            # listing or reading from any of them right after the answer sees the write (a replica that
            # is slow or hung costs at most the grace; W still decides success).
            done, pending = await asyncio.wait(pending, timeout=STRAGGLER_GRACE)
            acks.extend(r for r in (t.result() for t in done) if isinstance(r, Entry))
        if pending:
            # The answer must not depend on this process living until the stragglers finish: if it
            # dies first, their failures would never be queued. Their repair tasks are durable now;
            # a write that lands removes its task (settle), a failure makes it due at once.
            straggling.update(names[t] for t in pending if t in names)
            later = time.time() + STRAGGLER_REPAIR_DELAY
            await self.enqueue([RepairTask(ns, key, n, clock, 0, later) for n in sorted(straggling)])
        for t in pending:  # the rest finish (and queue their failures) in the background
            self._spawn(t)
        await noted
        if len(acks) < need:
            if isinstance(local_error, DiskFull):
                raise local_error
            if full:  # too few acks because replicas are full: 507, which a retry elsewhere won't fix
                raise full[0]
            raise Unavailable(f"only {len(acks)} of {need} replicas acknowledged")
        own = mine.result() if mine is not None and mine.done() else None
        return own if isinstance(own, Entry) else acks[0]

    def _plan(self, key: bytes, need: int) -> tuple[bool, list[Member], list[str]]:
        """(write locally?, remote replicas to write, names of replicas that are down or skipped).

        Replicas that are recovering (back after a stop, their repair queues still draining) take
        writes; replicas whose breaker is open are skipped while W can be met without them."""
        targets = self._targets(key)
        up = [m for m in targets if self.cluster.writable(m)]
        if len(up) < need:
            raise Unavailable(f"{len(up)} of the {need} replicas needed are running")
        healthy = [m for m in up if m.name == self.name or self.health.usable(m.name)]
        if len(healthy) >= need:
            up = healthy
        return (any(m.name == self.name for m in targets),
                [m for m in up if m.name != self.name],
                [m.name for m in targets if m not in up])  # fmt: skip

    # -- writes -------------------------------------------------------------------------------------
    async def put(self, ns: int, key: bytes, data: bytes | memoryview, header: PutHeader) -> Written:
        need = self.cluster.consistency.w
        here, others, missed = self._plan(key, need)
        clock = header.clock if header.clock is not None else self.next_clock(ns, key)
        stamp = header.timestamp if header.timestamp is not None else now_us()
        fixed = PutHeader(meta=header.meta, cindex=header.cindex, cnumber=header.cnumber, csize=header.csize,
                          md5=header.md5, clock=clock, timestamp=stamp)  # fmt: skip
        local: list[PutResult] = []
        put = functools.partial(self.store.put, ns, key, data, meta=fixed.meta, clock=clock, timestamp=stamp,
                                cindex=fixed.cindex, cnumber=fixed.cnumber, csize=fixed.csize, md5=fixed.md5)
        write: Awaitable[Entry] | None
        if header.expect is not None:
            write = self._done(await self._conditional(ns, key, here, lambda: put(expect=header.expect)), local)
        else:
            write = self._local(put(), local) if here else None
        remote = {m.name: self._remote_put_call(m, ns, key, data, fixed) for m in others}
        return await self._written(await self._quorum(need, ns, key, clock, write, remote, missed), local)

    async def _conditional(self, ns: int, key: bytes, here: bool,
                           write: Callable[[], Awaitable[PutResult]]) -> PutResult:  # fmt: skip
        """A compare-and-set write: evaluated by our own writer before any replica is written, on our
        copy brought up to date with R-1 replicas first (a coordinator that missed writes while it
        was down would judge a stale version; the window left is in docs/architecture.md)."""
        if not here:
            raise Unavailable("a conditional write needs a coordinator that holds a replica of the key")
        await self.check_read(ns, key)
        result = await write()  # WriteConflict goes to the caller: nothing was written anywhere
        if not result.applied:  # a newer version arrived from elsewhere: the condition was judged on old data
            raise WriteConflict(f"{key!r} changed during the conditional write")
        return result

    @staticmethod
    async def _done(result: PutResult, into: list[PutResult]) -> Entry:
        into.append(result)
        return result.entry

    @staticmethod
    async def _local(write: Awaitable[PutResult], into: list[PutResult]) -> Entry:
        result = await write
        into.append(result)
        return result.entry

    async def _written(self, entry: Entry, local: list[PutResult]) -> Written:
        """The answer to a coordinated write: with what our own replica replaced, when known."""
        if not local or not local[0].applied or local[0].previous is None:
            return Written(entry)
        previous = local[0].previous
        data = None
        if previous.cnumber > 0 and not previous.tombstone:
            try:  # the replaced needle is still in our log until compaction
                data = await self.store.read(previous)
            except (StaleEntry, CorruptData, ValueError):
                return Written(entry)
        return Written(entry, previous, data)

    def _remote_put_call(self, m: Member, ns: int, key: bytes, data: bytes | memoryview,
                         h: PutHeader) -> Callable[[], Awaitable[Entry]]:  # fmt: skip
        return lambda: self.transfer.replica_put(m.name, ns, key, data, h)

    async def delete(self, ns: int, key: bytes, *, expect: int | None = None) -> Written:
        need = self.cluster.consistency.d
        here, others, missed = self._plan(key, need)
        clock, stamp = self.next_clock(ns, key), now_us()
        local: list[PutResult] = []
        write: Awaitable[Entry] | None
        if expect is not None:
            delete = functools.partial(self.store.delete, ns, key, clock=clock, timestamp=stamp, expect=expect)
            write = self._done(await self._conditional(ns, key, here, delete), local)
        else:
            write = self._local(self.store.delete(ns, key, clock=clock, timestamp=stamp), local) if here else None
        remote = {m.name: self._remote_delete_call(m.name, ns, key, clock, stamp) for m in others}
        return await self._written(await self._quorum(need, ns, key, clock, write, remote, missed), local)

    def _remote_delete_call(self, name: str, ns: int, key: bytes, clock: int,
                            stamp: int) -> Callable[[], Awaitable[Entry]]:  # fmt: skip
        return lambda: self.transfer.replica_delete(name, ns, key, clock, stamp)

    # -- reads --------------------------------------------------------------------------------------
    async def check_read(self, ns: int, key: bytes) -> Entry | None:
        """The local entry after comparing with R-1 other running replicas (tombstones included);
        with every other replica when there is no local entry.

        A newer copy elsewhere is pulled and stored here first; replicas found stale or missing get
        a repair task. Replicas that do not answer are skipped: the read is served from the best
        copy reachable (LeoFS answers reads while replicas are down)."""
        local = self.store.get(ns, key)
        rings = self.cluster.rings
        r = self.cluster.consistency.r
        # while recovering, a local copy may be one a stale peer gave: compare with every replica
        if rings is None or (r <= 1 and local is not None and not self.recovering):
            return local
        # a peer whose breaker is open is skipped like a stopped one: the read must not wait on it
        peers = [m for m in rings.read_nodes(key)
                 if m.name != self.name and self.cluster.running(m) and self.health.usable(m.name)]
        if local is not None and not self.recovering:
            peers = peers[: r - 1]
        # else (any R): a miss may be a write this node missed while it was down, or this node may not
        # hold the key at all (a gateway with an older ring): ask every replica before answering 404
        if not peers:
            return self._unless_recovering(local, key)
        metas = await asyncio.gather(*(self.transfer.remote_meta(m.name, ns, key) for m in peers),
                                     return_exceptions=True)  # fmt: skip
        answered: dict[str, Entry | None] = {}
        for m, res in zip(peers, metas, strict=True):
            if isinstance(res, BaseException):
                log.info("read check of %r: %s did not answer (%s)", key, m.name, res)
            else:
                answered[m.name] = res
        if not answered:
            local = self._unless_recovering(local, key)
        newest, source = local, None
        for name, e in answered.items():
            if e is not None and (newest is None or e.clock > newest.clock):
                newest, source = e, name
        if source is not None and newest is not None:
            try:
                local = await self.transfer.pull(source, newest)
            except Exception as exc:
                # serve our copy; the newer one is found again on the next read
                log.warning("read-repair of %r from %s failed: %s", key, source, exc)
                return local
        if local is not None:
            stale = [n for n, e in answered.items() if e is None or e.clock < local.clock]
            if stale:
                self._spawn(self.enqueue([RepairTask(ns, key, n, local.clock) for n in stale]))
        return local

    def _unless_recovering(self, local: Entry | None, key: bytes) -> Entry | None:
        """A miss no other replica could confirm: 503 (try another replica) while recovering."""
        if local is None and self.recovering:
            raise Unavailable(f"{self.name} is recovering and no other replica of {key!r} answered")
        return local

