"""Carrying one key's copy between this node and another replica: the calls one node makes to
another for a key (LeoFS's replicator and read-repairer).

A replica PUT or DELETE at a given clock (the coordinator's writes to the other replicas, and
pushes), a replica's META, :meth:`Transfer.pull` (copy a newer version from a replica into the
local store: read-repair) and :meth:`Transfer.push` (bring a replica up to the local copy: the
repair queue's replayer). Each goes over the binary protocol, or HTTP when the node has no binary
client, is bounded by its type's timeout (:class:`~leofs.internal.health.CallTimeouts`) and counts
for or against the target's breaker (:class:`~leofs.internal.health.NodeHealth`).
"""

from __future__ import annotations

import logging
import zlib

from leofs.internal import wire
from leofs.internal.client import InternalClient
from leofs.internal.health import CallTimeouts, NodeHealth
from leofs.internal.messages import (
    ENTRY_HEADER,
    PUT_HEADER,
    ROLE_HEADER,
    ROLE_REPLICA,
    PutHeader,
    RepairTask,
    decode_entry_header,
    encode_b64,
    entry_decoder,
    key_param,
)
from leofs.internal.rpc import RpcClient
from leofs.node.membership import NodeCluster
from leofs.storage.model import CorruptData, DiskFull, Entry, StaleEntry
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.node.transfer")

_REPLICA = {ROLE_HEADER: ROLE_REPLICA}


#: the size a fetch's timeout assumes when the caller does not know it (anti-entropy's versions)
UNKNOWN_SIZE = 64 * 1024 * 1024
#: a repair task whose version is not (yet) in the local store is retried this many times
GIVE_UP_ATTEMPTS = 5


class VersionGone(Exception):
    """The source no longer holds the version asked for (a newer write replaced it): nothing to copy,
    the newer version reaches the replicas through its own coordinator."""


def _params(ns: int, key: bytes, **extra: int) -> dict[str, str]:
    return {"ns": str(ns), "key": key_param(key), **{k: str(v) for k, v in extra.items()}}


def _check_replica_answer(target: str, status: int, body: bytes) -> None:
    if status == 507:  # the replica's disk is full: the client must hear that, not "unavailable"
        raise DiskFull(f"{target}: {body[:200].decode(errors='replace')}")
    if status != 200:
        raise ConnectionError(f"{target} answered {status}: {body[:200]!r}")


class Transfer:
    """One node's calls to the other replicas of a key."""

    def __init__(self, store: ObjectStore, cluster: NodeCluster, client: InternalClient, health: NodeHealth,
                 timeouts: CallTimeouts, rpc: RpcClient | None = None) -> None:  # fmt: skip
        self.store = store
        self.cluster = cluster
        self.client = client
        self.health = health
        self.timeouts = timeouts
        self.rpc = rpc  # replica calls over the binary protocol; None: over HTTP

    async def replica_put(self, target: str, ns: int, key: bytes, data: bytes | memoryview, h: PutHeader) -> Entry:
        """PUT role=replica (Expect: 100-continue); the target's entry, which may be newer than ours."""
        if self.rpc is not None:
            timeout = self.timeouts.data_call(len(data)).total
            return await self._rpc_entry(target, wire.PUT, wire.Request(ns, key, put=h), data, timeout)
        headers = {**_REPLICA, PUT_HEADER: encode_b64(h), "Content-Type": "application/octet-stream"}
        async with self.health.call(target), self.client.request(
                "PUT", self.address(target), "/obj", params=_params(ns, key), data=data, headers=headers,
                expect100=True, timeout=self.timeouts.data_call(len(data))) as resp:  # fmt: skip
            body = await resp.read()
            _check_replica_answer(target, resp.status, body)
            return entry_decoder.decode(body)

    async def replica_delete(self, target: str, ns: int, key: bytes, clock: int, stamp: int) -> Entry:
        if self.rpc is not None:
            request = wire.Request(ns, key, clock=clock, timestamp=stamp)
            return await self._rpc_entry(target, wire.DELETE, request, b"", self.timeouts.op_call().total)
        async with self.health.call(target), self.client.request(
                "DELETE", self.address(target), "/obj", headers=_REPLICA,
                params=_params(ns, key, clock=clock, timestamp=stamp), timeout=self.timeouts.op_call()) as resp:
            body = await resp.read()
            _check_replica_answer(target, resp.status, body)
            return entry_decoder.decode(body)

    async def _rpc_entry(self, target: str, kind: int, request: wire.Request, data: bytes | memoryview,
                         timeout: float | None) -> Entry:  # fmt: skip
        """A replica write over the binary protocol; the target's entry."""
        assert self.rpc is not None
        async with self.health.call(target):  # an error status counts against the target, as over HTTP
            reply, _ = await self.rpc.call(self.address(target), kind, request, data, timeout=timeout,
                                           connect_timeout=self.timeouts.connect)  # fmt: skip
            _check_replica_answer(target, reply.status, reply.message.encode())
            if reply.entry is None:
                raise ConnectionError(f"{target} answered without an entry")
            return reply.entry

    def address(self, name: str) -> str:
        address = self.cluster.address_of(name)
        if address is None:
            raise ConnectionError(f"no address known for node {name}")
        return address

    # -- reads ---------------------------------------------------------------------------------------
    async def remote_meta(self, target: str, ns: int, key: bytes) -> Entry | None:
        if self.rpc is not None:
            async with self.health.call(target):
                reply, _ = await self.rpc.call(self.address(target), wire.META, wire.Request(ns, key),
                                               timeout=self.timeouts.op_call().total,
                                               connect_timeout=self.timeouts.connect)  # fmt: skip
                if reply.status == 404:
                    return None
                if reply.status != 200 or reply.entry is None:
                    raise ConnectionError(f"{target} answered {reply.status}")
                return reply.entry
        async with self.health.call(target), self.client.request(
                "GET", self.address(target), "/meta", params=_params(ns, key), headers=_REPLICA,
                timeout=self.timeouts.op_call()) as resp:
            body = await resp.read()
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise ConnectionError(f"{target} answered {resp.status}")
            return entry_decoder.decode(body)

    async def fetch(self, source: str, want: Entry) -> tuple[Entry, bytes | memoryview]:
        """Version ``want.clock`` of ``want``'s key from ``source``: its entry and bytes, checked
        against the CRC the source stored with the needle (a replica sends large objects with
        sendfile, unverified, so a damaged copy must not be stored here as a healthy one).
        VersionGone when ``source`` no longer holds that version, CorruptData when the bytes fail."""
        ns, key, clock = want.ns, want.key, want.clock
        size = want.size or UNKNOWN_SIZE
        data: bytes | memoryview
        e: Entry | None
        if self.rpc is not None:
            async with self.health.call(source):
                reply, body = await self.rpc.call(self.address(source), wire.GET, wire.Request(ns, key, clock=clock),
                                                  timeout=self.timeouts.data_call(size).total,
                                                  connect_timeout=self.timeouts.connect,
                                                  reply_size=size)  # fmt: skip
            status, e, data = reply.status, reply.entry, memoryview(body)
        else:
            async with self.health.call(source), self.client.request(
                    "GET", self.address(source), "/obj", headers=_REPLICA, params=_params(ns, key, clock=clock),
                    timeout=self.timeouts.data_call(size)) as resp:
                data = await resp.read()
                status = resp.status
                e = decode_entry_header(resp.headers[ENTRY_HEADER]) if status == 200 else None
        if status in (404, 409):
            raise VersionGone(f"{source} answered {status} for clock {clock} of {key!r}")
        if status != 200 or e is None:
            raise ConnectionError(f"{source} answered {status}")
        if zlib.crc32(data) != e.crc:
            raise CorruptData(f"{source}'s copy of {key!r} (clock {e.clock}) fails its CRC")
        return e, data

    async def pull(self, source: str, entry: Entry) -> Entry | None:
        """Copy ``entry``'s version from ``source`` into the local store; the local entry after."""
        if entry.tombstone:
            await self.store.delete(entry.ns, entry.key, clock=entry.clock, timestamp=entry.timestamp)
            return self.store.get(entry.ns, entry.key)
        e, data = await self.fetch(source, entry)
        await self.store.put(e.ns, e.key, data, meta=e.meta, clock=e.clock, timestamp=e.timestamp, cindex=e.cindex,
                             cnumber=e.cnumber, csize=e.csize, md5=e.md5 or None)  # fmt: skip
        log.info("read-repair: pulled %r (clock %d) from %s", e.key, e.clock, source)
        return self.store.get(e.ns, e.key)

    # -- repair -------------------------------------------------------------------------------------
    async def push(self, task: RepairTask) -> bool:
        """Bring ``task.target`` up to our copy (the replayer's pusher). True when done or moot."""
        for _ in range(3):
            local = self.store.get(task.ns, task.key)
            if local is None or local.clock < task.clock:
                # our own write of that version may still be on its way (a replica can fail faster
                # than the local fdatasync): retry a few times, then give up (compacted away, or our
                # write failed; read-repair covers the rest)
                if task.attempts < GIVE_UP_ATTEMPTS:
                    return False
                log.info("repair of %r for %s dropped: local copy is missing or older", task.key, task.target)
                return True
            try:
                await self.send(task.target, local)
            except StaleEntry:
                continue  # compacted or overwritten meanwhile: look again
            return True
        return False

    async def send(self, target: str, local: Entry) -> int:
        """Send the local version ``local`` to ``target`` at its own clock (a tombstone as a replica
        DELETE); the bytes of data sent. StaleEntry: it was compacted or overwritten meanwhile."""
        if local.tombstone:
            await self.replica_delete(target, local.ns, local.key, local.clock, local.timestamp)
            return 0
        data = await self.store.read(local)
        h = PutHeader(meta=local.meta, cindex=local.cindex, cnumber=local.cnumber, csize=local.csize,
                      md5=local.md5, clock=local.clock, timestamp=local.timestamp)  # fmt: skip
        await self.replica_put(target, local.ns, local.key, data, h)
        return len(data)
