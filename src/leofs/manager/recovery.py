"""The manager's recovery commands: recover-file, and recover-node / recover-consistency /
recover-damaged / recover-status, which run on the named storage node (``leofs.node.recovery_jobs``).

recover-file repairs one object on all its replicas: its record (``bucket/key``), and, when the
winning record is a manifest, every chunk of it. Each key is synchronised by a running replica of
it (``recover-key``: latest clock wins, tombstones count).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from leofs.gateway.keys import NS_CHUNK, NS_OBJECT, chunk_key
from leofs.gateway.records import manifest_decoder
from leofs.internal.admin_http import AdminError, Command, arg
from leofs.internal.client import InternalClient
from leofs.internal.messages import key_param
from leofs.manager.cluster import Cluster
from leofs.manager.members import STORAGE

#: node commands the manager passes on to the storage node named by ``node``
JOB_COMMANDS = ("recover-node", "recover-consistency", "recover-damaged", "recover-status")
KEY_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=2)
#: chunks synchronised at once by recover-file
CHUNKS_IN_FLIGHT = 8


#: ClusterCommands.call_node(address, command, args, timeout, name): a node's admin command
CallNode = Callable[[str, str, dict[str, Any], aiohttp.ClientTimeout, str], Awaitable[Any]]


class RecoveryCommands:
    """Installs the recovery commands on the manager's admin API."""

    def __init__(self, cluster: Cluster, client: InternalClient, call_node: CallNode) -> None:
        self.cluster = cluster
        self.members = cluster.members
        self.client = client
        self.call_node = call_node

    def commands(self) -> dict[str, Command]:
        out: dict[str, Command] = {"recover-file": self.recover_file}
        for name in JOB_COMMANDS:
            out[name] = self._on_node(name)
        return out

    def _on_node(self, command: str) -> Command:
        async def run(args: dict[str, Any]) -> Any:
            name = arg(args, "node")
            node = self.members.get(name)
            if node is None or node.type != STORAGE:
                raise AdminError("not_found", f"no storage node {name!r}; {self.members.known(STORAGE)}", 404)
            rest = {k: v for k, v in args.items() if k != "node"}
            return await self.call_node(node.address, command, rest, KEY_TIMEOUT, node.name)

        return run

    async def recover_file(self, args: dict[str, Any]) -> Any:
        """``path`` = BUCKET/KEY: the object's record and its chunks, synchronised on all replicas."""
        path = arg(args, "path")
        bucket, sep, name = path.partition("/")
        if not sep or not bucket or not name:
            raise AdminError("bad_argument", f"expected BUCKET/KEY, got {path!r}")
        record = await self._sync(NS_OBJECT, path.encode())
        keys = [record]
        if record.get("clock") is not None and not record.get("tombstone") and record.get("cnumber"):
            manifest = manifest_decoder.decode(await self._read_manifest(path.encode(), int(record["clock"])))
            gate = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

            async def chunk(blob_id: str, index: int) -> dict[str, Any]:
                async with gate:
                    return await self._sync(NS_CHUNK, chunk_key(bucket, name, blob_id, index))

            keys += await asyncio.gather(*(chunk(b.blob_id, i) for b in manifest.blobs for i in range(1, b.count + 1)))
        repaired = sum(len(k.get("repaired", [])) for k in keys)
        return {"path": path, "keys": len(keys), "copies_repaired": repaired,
                "unreachable": sorted({n for k in keys for n in k.get("unreachable", [])}), "details": keys}

    def _running_owners(self, key: bytes) -> list[tuple[str, str]]:
        rings = self.cluster.rings
        if rings is None:
            raise AdminError("not_started", "the cluster has no ring yet (leofs adm start)", 409)
        out = []
        for m in rings.write_nodes(key):
            node = self.members.get(m.name)
            if node is not None and node.state == "running":
                out.append((node.name, node.address))
        if not out:
            raise AdminError("unavailable", f"no replica of {key!r} is running", 503)
        return out

    async def _sync(self, ns: int, key: bytes) -> dict[str, Any]:
        """``recover-key`` on the first running replica that answers."""
        last: AdminError | None = None
        for name, address in self._running_owners(key):
            try:
                result: dict[str, Any] = await self.call_node(address, "recover-key",
                                                              {"ns": ns, "key": key_param(key)}, KEY_TIMEOUT, name)
            except AdminError as err:
                last = err
                continue
            return {**result, "node": name}
        assert last is not None
        raise last

    async def _read_manifest(self, key: bytes, clock: int) -> bytes:
        for _name, address in self._running_owners(key):
            try:
                async with self.client.request("GET", address, f"/obj?ns={NS_OBJECT}&key={key_param(key)}"
                                               f"&clock={clock}", timeout=KEY_TIMEOUT) as resp:  # fmt: skip
                    data = await resp.read()
                    if resp.status == 200:
                        return bytes(data)
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue
        raise AdminError("unavailable", f"no replica could send the manifest of {key!r}", 503)
