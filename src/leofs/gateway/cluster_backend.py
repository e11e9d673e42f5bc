"""The gateway's backend in a cluster: each key goes, through the RING, to its storage nodes.

Writes, deletes and reads go to the first running node of the key's redundancy list, which
coordinates the quorum (docs/design.md, "Roles"); on a connection failure the next node is tried.
Listings fan out to every running storage node, each asked for about its share of the page, and
merge: newest clock wins, tombstones hidden.

Every call is bounded by its type's timeout, and counts against the node's error budget
(:mod:`leofs.internal.health`): a node that failed is tried last (writes, reads) or left out
(listings) until a probe finds it answering again, so no request waits twice on a dead node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import BinaryIO

from leofs.gateway.backend import Replaced, VersionGone, WriteConflict
from leofs.gateway.local_data import Elsewhere, LocalReads
from leofs.internal import wire
from leofs.internal.client import InternalClient
from leofs.internal.health import NODE_ERRORS, CallTimeouts, NodeHealth, health_probe
from leofs.internal.membership import ClusterState
from leofs.internal.messages import (
    DEADLINE_HEADER,
    ENTRY_HEADER,
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    NodeInfo,
    PutHeader,
    Written,
    decode_entry_header,
    encode_b64,
    entry_decoder,
    from_scan_items,
    key_param,
    scan_decoder,
    written_decoder,
)
from leofs.internal.rpc import RpcClient
from leofs.ring.members import Member
from leofs.s3.errors import S3Error
from leofs.storage.model import CommonPrefix, Entry

log = logging.getLogger("leofs.gateway.cluster")

_NODE_ERRORS = NODE_ERRORS
_COORDINATE = {ROLE_HEADER: ROLE_COORDINATE}
STREAM_PIECE = 256 * 1024
#: reads up to this size come whole in one binary reply (a chunk); longer ones stream over HTTP
RPC_READ_MAX = 16 * 1024 * 1024


class ClusterBackend:
    """:class:`~leofs.gateway.backend.Backend` over the storage nodes of a cluster."""

    local = False

    def __init__(self, client: InternalClient, state: ClusterState, timeouts: CallTimeouts | None = None,
                 health: NodeHealth | None = None, rpc: RpcClient | None = None,
                 local_reads: LocalReads | None = None) -> None:  # fmt: skip
        self.client = client
        #: large reads from replicas on this host by descriptor passing; None: always over TCP
        self.local_reads = local_reads
        self.rpc = rpc  # object calls over the binary protocol; None: over HTTP (scan always is)
        self.state = state
        self.timeouts = timeouts or CallTimeouts()
        self.health = health or NodeHealth(health_probe(client, self.timeouts, self._address_of))
        state.on_back.append(self.health.succeeded)

    def _address_of(self, name: str) -> str | None:
        node = self.state.nodes.get(name)
        return node.address if node is not None else None

    def _candidates(self, key: bytes) -> list[Member]:
        """Running replicas of the key, current ring first (then the previous ring's, mid-rebalance)."""
        rings = self.state.rings
        if rings is None:
            raise S3Error("ServiceUnavailable", "The cluster has no ring yet (run `leofs adm start`).")
        return self.health.order((m for m in rings.read_nodes(key) if self.state.running(m)), _name)

    def _writers(self, key: bytes) -> list[Member]:
        rings = self.state.rings
        if rings is None:
            raise S3Error("ServiceUnavailable", "The cluster has no ring yet (run `leofs adm start`).")
        return self.health.order((m for m in rings.write_nodes(key) if self.state.running(m)), _name)

    @staticmethod
    def _query(ns: int, key: bytes, **extra: int) -> dict[str, str]:
        return {"ns": str(ns), "key": key_param(key), **{k: str(v) for k, v in extra.items()}}

    async def _coordinated(self, method: str, ns: int, key: bytes, *, data: bytes | memoryview | None = None,
                           header: PutHeader | None = None,
                           expect: int | None = None) -> tuple[Entry, Replaced | None]:  # fmt: skip
        nodes = self._writers(key)
        if not nodes:
            raise S3Error("ServiceUnavailable", "No replica of this key is available.")
        headers = dict(_COORDINATE)
        if header is not None:
            headers[PUT_HEADER] = encode_b64(header)
        timeout = self.timeouts.op_call(coordinated=True) if data is None else self.timeouts.data_call(len(data))
        for node in nodes:
            assert timeout.total is not None
            deadline = time.time() + timeout.total
            try:
                async with self.health.call(node.name):
                    if self.rpc is not None:
                        request = wire.Request(ns, key, coordinate=True, put=header, deadline=round(deadline, 3),
                                               expect=expect)  # fmt: skip
                        reply, body = await self.rpc.call(self.state.address(node), wire.PUT if method == "PUT"
                                                       else wire.DELETE, request, data or b"", timeout=timeout.total,
                                                       connect_timeout=self.timeouts.connect)  # fmt: skip
                        status, written, text = reply.status, reply.written, reply.message.encode()
                        if written is not None and reply.previous_data:  # the replaced record's data
                            written = Written(written.entry, written.previous, bytes(body))
                    else:
                        headers[DEADLINE_HEADER] = f"{deadline:.3f}"
                        params = self._query(ns, key) if expect is None else self._query(ns, key, expect=expect)
                        async with self.client.request(method, self.state.address(node), "/obj", params=params,
                                                       data=data, headers=headers, timeout=timeout) as resp:
                            text = await resp.read()
                            status = resp.status
                            written = written_decoder.decode(text) if status == 200 else None
                if status == 200 and written is not None:
                    replaced = None
                    if written.previous is not None:
                        replaced = Replaced(written.previous, written.previous_data)
                    return written.entry, replaced
                if status == 412:  # the coordinator's compare-and-set did not hold
                    raise WriteConflict(text[:200].decode(errors="replace"))
                _raise_for_status(status, text)
            except _NODE_ERRORS as exc:
                log.info("storage node %s failed on %s: %s; trying the next replica", node.name, method, exc)
        raise S3Error("ServiceUnavailable", "No replica of this key could be reached.")

    async def put(
        self, ns: int, key: bytes, data: bytes | memoryview, *, meta: bytes = b"", cindex: int = 0,
        cnumber: int = 0, csize: int = 0, md5: bytes | None = None, clock: int | None = None,
        timestamp: int | None = None, expect: int | None = None,
    ) -> tuple[Entry, Replaced | None]:
        header = PutHeader(meta=meta, cindex=cindex, cnumber=cnumber, csize=csize, md5=md5, clock=clock,
                           timestamp=timestamp, expect=expect)
        return await self._coordinated("PUT", ns, key, data=data if self.rpc is not None else bytes(data),
                                       header=header)

    async def delete(self, ns: int, key: bytes, *, expect: int | None = None) -> Replaced | None:
        return (await self._coordinated("DELETE", ns, key, expect=expect))[1]

    async def head(self, ns: int, key: bytes, *, hint: bool = False) -> Entry | None:
        # without the coordinate role the node answers from its own copy (no read-repair fan-out)
        headers = {} if hint else _COORDINATE
        timeout = self.timeouts.op_call(coordinated=not hint)
        for node in self._candidates(key):
            try:
                async with self.health.call(node.name):
                    if self.rpc is not None:
                        reply, _ = await self.rpc.call(self.state.address(node), wire.META,
                                                       wire.Request(ns, key, coordinate=not hint),
                                                       timeout=timeout.total, connect_timeout=self.timeouts.connect)
                        status, entry, text = reply.status, reply.entry, reply.message.encode()
                    else:
                        async with self.client.request("GET", self.state.address(node), "/meta",
                                                       params=self._query(ns, key), headers=headers,
                                                       timeout=timeout) as resp:  # fmt: skip
                            text = await resp.read()
                            status = resp.status
                            entry = entry_decoder.decode(text) if status == 200 else None
                if status == 404:
                    return None
                if status == 200 and entry is not None:
                    return None if entry.tombstone else entry
                _raise_for_status(status, text)
            except _NODE_ERRORS as exc:
                log.info("storage node %s failed on HEAD: %s", node.name, exc)
        raise S3Error("ServiceUnavailable", "No replica of this key could be reached.")

    async def fetch(self, ns: int, key: bytes) -> tuple[Entry, bytes] | None:
        """Record and data in one call to a coordinator (which compares with R-1 replicas)."""
        got = await self._fetch(ns, key, None)
        if got is None:
            return None
        entry, data = got
        return entry, data or b""

    async def fetch_unless(self, ns: int, key: bytes, clock: int) -> tuple[Entry, bytes | None] | None:
        """As :meth:`fetch`; the node answers "match" without the data when its version has ``clock``."""
        return await self._fetch(ns, key, clock)

    async def _fetch(self, ns: int, key: bytes, match: int | None) -> tuple[Entry, bytes | None] | None:
        params = self._query(ns, key) if match is None else self._query(ns, key, match=match)
        timeout = self.timeouts.stream_call()
        for node in self._candidates(key):
            try:
                async with self.health.call(node.name):
                    if self.rpc is not None:
                        # a whole object in one reply: bounded by the compare (op) and the silence allowed
                        reply, data = await self.rpc.call(
                            self.state.address(node), wire.GET, wire.Request(ns, key, coordinate=True, match=match),
                            timeout=2 * self.timeouts.op + self.timeouts.body, connect_timeout=self.timeouts.connect)
                        status, entry, body = reply.status, reply.entry, data
                        text = reply.message.encode()
                    else:
                        async with self.client.request("GET", self.state.address(node), "/obj", params=params,
                                                       headers=_COORDINATE, timeout=timeout) as resp:  # fmt: skip
                            body = text = await resp.read()
                            status = resp.status
                            raw = resp.headers.get(ENTRY_HEADER)
                            entry = decode_entry_header(raw) if raw is not None else None
                if status == 404:
                    return None
                if status == 200 and entry is not None:
                    if body is None or len(body) != entry.size:  # never serve a short or long copy
                        log.warning("storage node %s sent %s bytes of %r for a version of %d: trying another",
                                    node.name, None if body is None else len(body), key, entry.size)
                        continue
                    return entry, body
                if status == 304 and match is not None and entry is not None:  # the caller's copy is current
                    return entry, None
                if status == 409:  # this replica's copy failed its checksum: try the next
                    continue
                _raise_for_status(status, text)
            except _NODE_ERRORS as exc:
                log.info("storage node %s failed on GET: %s", node.name, exc)
        raise S3Error("ServiceUnavailable", "No replica of this key could be reached.")

    async def stream(self, entry: Entry, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The entry's data from ``start``, as it arrives from a replica holding that version."""
        n = entry.size - start if length is None else length
        params = self._query(entry.ns, entry.key, start=start, length=n, clock=entry.clock)
        unreachable = False
        timeout = self.timeouts.stream_call()
        for node in self._candidates(entry.key):
            try:
                if self.rpc is not None and n <= RPC_READ_MAX:
                    async with self.health.call(node.name):
                        request = wire.Request(entry.ns, entry.key, coordinate=True, clock=entry.clock, start=start,
                                               length=n)  # fmt: skip
                        reply, data = await self.rpc.call(self.state.address(node), wire.GET, request,
                                                          timeout=self.timeouts.data_call(n).total,
                                                          connect_timeout=self.timeouts.connect,
                                                          reply_size=n)  # fmt: skip
                        if reply.status == 200 and len(data) != n:
                            raise ConnectionResetError("short read from a storage node")
                    if reply.status in (404, 409):  # this replica has another version: try the next
                        continue
                    if reply.status != 200:
                        _raise_for_status(reply.status, reply.message.encode())
                    yield data
                    return
                async with self.health.call(node.name), self.client.request(
                        "GET", self.state.address(node), "/obj", params=params, headers=_COORDINATE,
                        timeout=timeout) as resp:  # fmt: skip
                    if resp.status in (404, 409):  # this replica has another version: try the next
                        continue
                    if resp.status != 200:
                        _raise_for_status(resp.status, await resp.read())
                    sent = 0
                    async for piece in resp.content.iter_chunked(STREAM_PIECE):
                        sent += len(piece)
                        yield piece
                    if sent != n:
                        raise ConnectionResetError("short read from a storage node")
                    return
            except _NODE_ERRORS as exc:
                log.info("storage node %s failed on GET: %s", node.name, exc)
                unreachable = True
        if unreachable:
            raise S3Error("ServiceUnavailable", "No replica holding this version could be reached.")
        raise VersionGone()  # every replica answered with another version: it was overwritten

    async def read(self, entry: Entry, start: int = 0, length: int | None = None) -> bytes:
        return b"".join([piece async for piece in self.stream(entry, start, length)])

    async def open_data(self, entry: Entry) -> tuple[BinaryIO, int, int] | None:
        """The entry's data from the first replica (ring order, running, healthy first) that runs
        on this host, by its local data socket (:mod:`leofs.gateway.local_data`); None when none
        does, or the one asked holds another version (the stream path then retries and picks)."""
        if self.local_reads is None or self.state.rings is None:
            return None
        for node in self._candidates(entry.key):
            try:
                opened = await self.local_reads.open(self.state.address(node), entry)
            except Elsewhere as exc:
                log.info("local replica %s of %r: %s; reading over TCP", node.name, entry.key, exc)
                return None
            if opened is not None:
                return opened
        return None

    def close_local(self) -> None:
        """Close the idle local data connections (at shutdown)."""
        if self.local_reads is not None:
            self.local_reads.close()

    async def scan(
        self, ns: int, prefix: bytes, *, start_after: bytes = b"", limit: int = 1000, delimiter: bytes | None = None,
    ) -> list[Entry | CommonPrefix]:
        """A merged page from every running storage node, each asked for about its share of it.

        A node holds about N/nodes of the keys, so each is asked for :func:`share` rows (2x its
        expected share; the whole page with few nodes), and further rounds (asking twice as much each
        time) start from the last certain item while the page is short.
        """
        running = [n for n in self.state.storage_nodes() if n.state == "running"]
        # a failing node would hold every page for a timeout: with N copies the others hold its keys
        nodes = [n for n in running if self.health.usable(n.name)] or running
        if not nodes:
            raise S3Error("ServiceUnavailable", "No storage node is available.")
        rings = self.state.rings
        copies = rings.current.replicas if rings is not None else self.state.consistency.n
        out: list[Entry | CommonPrefix] = []
        start = start_after
        rounds = 0
        while True:
            # each further round asks twice as much: a run of hidden tombstones ends in a few rounds
            per_node = min(limit, self._per_node(limit - len(out), limit, copies, len(nodes)) << min(rounds, 16))
            rounds += 1
            pages = await self._scan_all(nodes, ns, prefix, start, per_node, delimiter)
            # A node that returned a full page may hold more keys before another node's last key:
            # only items up to the smallest such last key are certain.
            horizon = min((_sort_key(p[-1]) for p in pages if len(p) >= per_node), default=None)
            merged: dict[bytes, Entry | CommonPrefix] = {}
            for page in pages:
                for item in page:
                    k = _sort_key(item)
                    if horizon is not None and k > horizon:
                        break
                    seen = merged.get(k)
                    if seen is None or (isinstance(item, Entry) and isinstance(seen, Entry)
                                        and item.clock > seen.clock):
                        merged[k] = item
            ordered = [merged[k] for k in sorted(merged)]
            visible = [i for i in ordered if not (isinstance(i, Entry) and i.tombstone)]
            out.extend(visible[: limit - len(out)])
            if len(out) >= limit or horizon is None or not ordered:
                return out
            start = _sort_key(ordered[-1])

    @staticmethod
    def _per_node(wanted: int, limit: int, copies: int, nodes: int) -> int:
        """Rows to ask each node for (a method so that benchmarks/ring_sim.py can compare policies)."""
        return share(wanted, limit, copies, nodes)

    async def _scan_all(self, nodes: list[NodeInfo], ns: int, prefix: bytes, start: bytes, limit: int,
                        delimiter: bytes | None) -> list[list[Entry | CommonPrefix]]:
        params = {"ns": str(ns), "prefix": key_param(prefix), "start_after": key_param(start), "limit": str(limit),
                  # tombstones hide older live copies on nodes that missed a delete (nodes roll
                  # prefixes up from live keys only)
                  "tombstones": "1"}
        if delimiter:
            params["delimiter"] = key_param(delimiter)

        timeout = self.timeouts.op_call()

        async def one(node: NodeInfo) -> list[Entry | CommonPrefix]:
            async with self.health.call(node.name), self.client.request(
                    "GET", node.address, "/scan", params=params, timeout=timeout) as resp:
                body = await resp.read()
                if resp.status != 200:
                    _raise_for_status(resp.status, body)
                return from_scan_items(scan_decoder.decode(body))

        results = await asyncio.gather(*(one(n) for n in nodes), return_exceptions=True)
        pages = []
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, BaseException):
                # with N copies a listing stays complete while fewer than N nodes are missing
                log.info("storage node %s failed on scan: %s", node.name, result)
                continue
            pages.append(result)
        if not pages:
            raise S3Error("ServiceUnavailable", "No storage node answered the listing.")
        return pages


def share(wanted: int, limit: int, copies: int, nodes: int) -> int:
    """Rows to ask each of ``nodes`` nodes for when ``wanted`` more items of a ``limit`` page are
    needed and every key has ``copies`` copies: twice a node's expected share (at least 16, so that
    a round always makes progress past hidden tombstones; at most ``limit``, what one node could
    contribute to the page)."""
    return min(limit, max(16, -(-2 * max(copies, 1) * wanted // max(nodes, 1))))


def _name(member: Member) -> str:
    return member.name


def _sort_key(item: Entry | CommonPrefix) -> bytes:
    return item.key if isinstance(item, Entry) else item.prefix


def _raise_for_status(status: int, body: bytes) -> None:
    text = body[:200].decode(errors="replace")
    if status == 507:
        raise S3Error("InsufficientStorage")
    if status in (503, 502, 504):
        raise S3Error("ServiceUnavailable", text or None)
    if status == 400:
        raise S3Error("InvalidArgument", text or None)
    raise S3Error("InternalError", f"storage node answered {status}: {text}")

