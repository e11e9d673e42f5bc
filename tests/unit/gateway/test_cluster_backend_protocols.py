"""ClusterBackend and the nodes' coordinators answer the same over both internal protocols
(``internal_protocol = "binary" | "http"``): put, conditional writes, head, fetch, fetch_unless
(the cache's "match"), stream with ranges (small and sendfile'd sizes), delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leofs.gateway.backend import WriteConflict
from leofs.gateway.cluster_backend import ClusterBackend
from leofs.internal.membership import ClusterState
from leofs.internal.rpc import RpcClient
from leofs.node.node import StorageNodeOptions
from tests.unit.node.nodetest_helpers import SECRET, TestCluster, run_cluster


@pytest.mark.parametrize("protocol", ["binary", "http"])
def test_backend_calls_over_either_protocol(tmp_path: Path, protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = protocol == "binary"
    options = TestCluster.options

    def with_protocol(self: TestCluster, name: str) -> StorageNodeOptions:
        opts = options(self, name)
        opts.binary = binary  # the coordinators' replica calls too
        return opts

    monkeypatch.setattr(TestCluster, "options", with_protocol)

    async def body(c: TestCluster) -> None:
        state = ClusterState()
        state.apply(c.view())
        rpc = RpcClient(SECRET) if binary else None
        backend = ClusterBackend(c.client, state, rpc=rpc)
        try:
            big = os.urandom(1536 * 1024 + 7)  # above verify_below: sendfile'd by the node
            entry, replaced = await backend.put(0, b"b/big", big, meta=b"M")
            assert replaced is None and entry.size == len(big)
            entry2, replaced = await backend.put(0, b"b/big", big[:100], meta=b"N")
            assert replaced is not None and replaced.entry.clock == entry.clock and entry2.clock > entry.clock
            head = await backend.head(0, b"b/big")
            assert head is not None and head.clock == entry2.clock and head.meta == b"N"
            assert await backend.head(0, b"b/none") is None and await backend.fetch(0, b"b/none") is None
            got = await backend.fetch(0, b"b/big")
            assert got is not None and got[1] == big[:100]
            current = await backend.fetch_unless(0, b"b/big", entry2.clock)
            assert current is not None and current[1] is None and current[0].clock == entry2.clock
            big3, _ = await backend.put(0, b"b/big", big)
            assert await backend.read(big3) == big
            assert await backend.read(big3, 1000, 70000) == big[1000:71000]
            assert b"".join([bytes(p) async for p in backend.stream(big3, len(big) - 5)]) == big[-5:]
            with pytest.raises(WriteConflict):
                await backend.put(0, b"b/big", b"x", expect=entry.clock)  # not the live version
            await backend.put(0, b"b/big", b"y", expect=big3.clock)
            with pytest.raises(WriteConflict):
                await backend.delete(0, b"b/big", expect=big3.clock)
            replaced = await backend.delete(0, b"b/big")
            assert replaced is not None and await backend.head(0, b"b/big") is None
            # a replaced parent record comes back with its data (larger than a binary header may be)
            manifest = os.urandom(100 * 1024)
            await backend.put(0, b"b/parent", manifest, cnumber=2, csize=5)
            _, replaced = await backend.put(0, b"b/parent", b"new")
            assert replaced is not None and replaced.entry.cnumber == 2 and replaced.data == manifest
            assert await backend.head(0, b"b/big", hint=True) is None
        finally:
            if rpc is not None:
                await rpc.close()
            await backend.health.close()

    run_cluster(tmp_path, body)
