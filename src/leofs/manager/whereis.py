"""``leofs adm whereis BUCKET/KEY``: what every replica of an object holds, asked of the nodes the
RING names for the key (current ring first, then the previous ring's extras during a rebalance).

A large or multipart object's record is a manifest (``cnumber`` > 0 chunks); its replicas then
report the object's size and chunk count from the stored object metadata, not the manifest's
bytes. With ``chunks`` the replicas of every chunk are listed too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec

from leofs.gateway.keys import NS_CHUNK, NS_OBJECT, chunk_key
from leofs.gateway.records import manifest_decoder, object_meta_decoder
from leofs.internal.admin_http import AdminError
from leofs.internal.client import InternalClient
from leofs.internal.messages import entry_decoder, key_param
from leofs.manager.cluster import Cluster
from leofs.storage.model import Entry

QUERY_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=2)
#: chunk lookups in flight at once (a 1 GiB object has about 200 chunks, each on N nodes)
CHUNK_QUERIES = 16


class Whereis:
    """The whereis command over the manager's view of the cluster."""

    def __init__(self, cluster: Cluster, client: InternalClient) -> None:
        self.cluster = cluster
        self.members = cluster.members
        self.client = client

    async def __call__(self, args: dict[str, Any]) -> Any:
        path = args.get("path")
        if not isinstance(path, str) or not path:
            raise AdminError("bad_argument", "missing argument 'path'")
        bucket, sep, name = path.partition("/")
        if not sep or not bucket or not name:
            raise AdminError("bad_argument", f"expected BUCKET/KEY, got {path!r}")
        rings = self.cluster.rings
        if rings is None:
            raise AdminError("not_started", "the cluster has no ring yet (leofs adm start)", 409)
        key = path.encode()
        current = {m.name for m in rings.current.redundancy(key)}
        replicas = rings.read_nodes(key)
        found = await asyncio.gather(*(self._lookup(m.name, m.address, NS_OBJECT, key) for m in replicas))
        rows = [self._object_row(name, m.name in current, entry, status)
                for m, (name, entry, status) in zip(replicas, found, strict=True)]
        result: dict[str, Any] = {"path": path, "address": f"{rings.current.address(key):032x}", "replicas": rows}
        newest = max((e for _, e, _ in found if e is not None), key=lambda e: e.clock, default=None)
        if newest is not None and not newest.tombstone:
            meta = _object_meta(newest)
            result["object_size"] = meta.size if meta is not None else newest.size
            result["chunks"] = newest.cnumber
            if args.get("chunks") and newest.cnumber > 0:
                result["chunk_replicas"] = await self._chunks(bucket, name, key, newest, found)
        return result

    def _object_row(self, name: str, in_current: bool, entry: Entry | None, status: str) -> dict[str, Any]:
        node = self.members.get(name)
        row: dict[str, Any] = {
            "node": name, "state": node.state if node is not None else "unknown",
            "ring": "current" if in_current else "previous", "status": status, "clock": None, "etag": None,
            "size": None, "object_size": None, "tombstone": None, "cnumber": None, "timestamp": None,
        }
        if entry is None:
            return row
        meta = _object_meta(entry)
        row.update(clock=entry.clock, etag=meta.etag if meta is not None else entry.md5.hex(), size=entry.size,
                   object_size=meta.size if meta is not None else entry.size, tombstone=entry.tombstone,
                   cnumber=entry.cnumber, timestamp=entry.timestamp)
        return row

    async def _lookup(self, name: str, ring_address: str, ns: int, key: bytes) -> tuple[str, Entry | None, str]:
        """(node, its entry or None, status: ok / missing / unreachable / error: ...)."""
        node = self.members.get(name)
        address = node.address if node is not None else ring_address
        try:
            async with self.client.request("GET", address, f"/meta?ns={ns}&key={key_param(key)}",
                                           timeout=QUERY_TIMEOUT) as resp:
                data = await resp.read()
                if resp.status == 404:
                    return name, None, "missing"
                if resp.status != 200:
                    return name, None, f"error: HTTP {resp.status}"
            return name, entry_decoder.decode(data), "ok"
        except (aiohttp.ClientError, TimeoutError, OSError):
            return name, None, "unreachable"
        except msgspec.DecodeError as exc:
            return name, None, f"error: {exc}"

    async def _chunks(self, bucket: str, name: str, key: bytes, newest: Entry,
                      found: list[tuple[str, Entry | None, str]]) -> list[dict[str, Any]]:
        """Every chunk of the manifest the newest replica holds, with what each of its nodes has."""
        holder = next(n for n, e, _ in found if e is not None and e.clock == newest.clock)
        manifest = manifest_decoder.decode(await self._read(holder, key, newest.clock))
        gate = asyncio.Semaphore(CHUNK_QUERIES)
        ring = self.cluster.rings.current if self.cluster.rings is not None else None
        if ring is None:
            return []

        async def one(blob_id: str, index: int, number: int) -> dict[str, Any]:
            ckey = chunk_key(bucket, name, blob_id, index)
            async with gate:
                answers = await asyncio.gather(*(self._lookup(m.name, m.address, NS_CHUNK, ckey)
                                                 for m in ring.redundancy(ckey)))
            return {"chunk": number, "blob": blob_id, "index": index, "replicas": [
                {"node": n, "status": status, "size": e.size if e is not None else None,
                 "etag": e.md5.hex() if e is not None else None} for n, e, status in answers]}

        work = []
        number = 0
        for blob in manifest.blobs:
            for index in range(1, blob.count + 1):
                number += 1
                work.append(one(blob.blob_id, index, number))
        return list(await asyncio.gather(*work))

    async def _read(self, name: str, key: bytes, clock: int) -> bytes:
        node = self.members.get(name)
        if node is None:
            raise AdminError("unavailable", f"{name} is no longer a member", 503)
        try:
            async with self.client.request("GET", node.address, f"/obj?ns={NS_OBJECT}&key={key_param(key)}"
                                           f"&clock={clock}", timeout=QUERY_TIMEOUT) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise AdminError("unavailable", f"{name} could not send the manifest: HTTP {resp.status}", 502)
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AdminError("unreachable", f"{name} at {node.address}: {exc or type(exc).__name__}", 502) from None


def _object_meta(entry: Entry) -> Any:
    """The S3 object metadata stored with the record (None if absent or not readable)."""
    if entry.tombstone or not entry.meta:
        return None
    try:
        return object_meta_decoder.decode(entry.meta)
    except msgspec.DecodeError:
        return None
