"""Real storage nodes in one event loop on 127.0.0.1 (port 0), rings fed through POST /int/ring."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from leofs.internal.client import InternalClient
from leofs.internal.messages import (
    ENTRY_HEADER,
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    ROLE_REPLICA,
    ClusterView,
    Consistency,
    NodeInfo,
    PutHeader,
    decode_entry_header,
    encode_b64,
    encoder,
    entry_decoder,
    key_param,
    written_decoder,
)
from leofs.node.node import StorageNode, StorageNodeOptions
from leofs.ring import Member, build_ring
from leofs.storage.model import Entry

SECRET = "test-cluster-secret"


class TestCluster:
    """``names`` storage nodes with their own data dirs; no manager."""

    __test__ = False

    def __init__(self, base: Path, names: list[str], consistency: Consistency) -> None:
        self.base = base
        self.names = names
        self.consistency = consistency
        self.nodes: dict[str, StorageNode] = {}
        self.ports: dict[str, int] = {}
        self.states: dict[str, str] = dict.fromkeys(names, "running")
        self.client = InternalClient(SECRET, timeout=10.0)

    def options(self, name: str) -> StorageNodeOptions:
        return StorageNodeOptions(name=name, data_dir=self.base / name, manager=None,
                                  address=("127.0.0.1", self.ports.get(name, 0)), containers=2, sync=False,
                                  secret=SECRET, repair_base=0.05, repair_cap=0.2)

    async def start(self, name: str) -> StorageNode:
        node = StorageNode(self.options(name))
        await node.start()
        self.nodes[name] = node
        self.ports[name] = node.port
        return node

    async def stop(self, name: str) -> None:
        await self.nodes.pop(name).stop()

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def view(self) -> ClusterView:
        members = [Member(n, self.addr(n), state=self.states[n]) for n in self.names]
        ring = build_ring(members, replicas=self.consistency.n)
        nodes = [NodeInfo(n, "storage", self.addr(n), self.states[n]) for n in self.names]
        return ClusterView("running", self.consistency, nodes, ring.hash, ring.hash, ring.to_bytes(), b"")

    async def push_view(self) -> None:
        body = encoder.encode(self.view())
        for name in self.nodes:
            async with self.client.request("POST", self.addr(name), "/int/ring", data=body) as resp:
                assert resp.status == 200, await resp.text()

    async def close(self) -> None:
        for name in list(self.nodes):
            await self.stop(name)
        await self.client.close()

    # -- requests -----------------------------------------------------------------------------------
    async def put(self, node: str, key: bytes, data: bytes, *, ns: int = 0, role: str = ROLE_COORDINATE,
                  header: PutHeader | None = None) -> tuple[int, Entry | None]:
        headers = {ROLE_HEADER: role, PUT_HEADER: encode_b64(header or PutHeader())}
        async with self.client.request("PUT", self.addr(node), "/obj", params=q(ns, key), data=data,
                                       headers=headers) as resp:
            body = await resp.read()
            return resp.status, _written(role, body) if resp.status == 200 else None

    async def delete(self, node: str, key: bytes, *, ns: int = 0, role: str = ROLE_COORDINATE,
                     **extra: int) -> tuple[int, Entry | None]:
        async with self.client.request("DELETE", self.addr(node), "/obj", params=q(ns, key, **extra),
                                       headers={ROLE_HEADER: role}) as resp:
            body = await resp.read()
            return resp.status, _written(role, body) if resp.status == 200 else None

    async def get(self, node: str, key: bytes, *, ns: int = 0, role: str = ROLE_REPLICA,
                  **extra: int) -> tuple[int, bytes, Entry | None]:
        async with self.client.request("GET", self.addr(node), "/obj", params=q(ns, key, **extra),
                                       headers={ROLE_HEADER: role}) as resp:
            body = await resp.read()
            entry = decode_entry_header(resp.headers[ENTRY_HEADER]) if ENTRY_HEADER in resp.headers else None
            return resp.status, body, entry

    async def meta(self, node: str, key: bytes, *, ns: int = 0, role: str = ROLE_REPLICA) -> tuple[int, Entry | None]:
        async with self.client.request("GET", self.addr(node), "/meta", params=q(ns, key),
                                       headers={ROLE_HEADER: role}) as resp:
            body = await resp.read()
            return resp.status, entry_decoder.decode(body) if resp.status == 200 else None

    def local(self, node: str, key: bytes, ns: int = 0) -> Entry | None:
        return self.nodes[node].store.get(ns, key)


def q(ns: int, key: bytes, **extra: int) -> dict[str, str]:
    return {"ns": str(ns), "key": key_param(key), **{k: str(v) for k, v in extra.items()}}


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until true (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def run_cluster(tmp: Path, test: Callable[[TestCluster], Awaitable[Any]], *, names: list[str] | None = None,
                n: int = 3, w: int = 2, r: int = 1, d: int = 2) -> None:
    """Start the nodes, push the ring, run ``test``, always clean up."""

    async def main() -> None:
        cluster = TestCluster(tmp, names or ["s1", "s2", "s3"], Consistency(n=n, w=w, r=r, d=d))
        try:
            for name in cluster.names:
                await cluster.start(name)
            await cluster.push_view()
            await asyncio.wait_for(test(cluster), 50)
        finally:
            await cluster.close()

    asyncio.run(main())


def _written(role: str, body: bytes) -> Entry:
    """The entry a write answered: a coordinator wraps it with the replaced version."""
    if role == ROLE_COORDINATE:
        return written_decoder.decode(body).entry
    return entry_decoder.decode(body)
