"""The manager's HTTP surface over real loopback HTTP: secret, register/heartbeat, long-poll, buckets,
and the commands that talk to nodes (ring push, whereis, forwarding, delete-bucket's emptiness scan)
against real in-process storage nodes, purge-cache against a stand-in gateway."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from leofs.internal.messages import (
    MSGPACK,
    SECRET_HEADER,
    HeartbeatRequest,
    RegisterRequest,
    encoder,
    view_decoder,
)
from leofs.manager.service import Manager, ManagerOptions
from leofs.node.node import StorageNode, StorageNodeOptions

SECRET = "unit-test-secret"
AUTH = {SECRET_HEADER: SECRET}


@asynccontextmanager
async def manager(tmp_path: Path, n: int = 1) -> AsyncIterator[tuple[Manager, TestClient[Any, Any]]]:
    mgr = Manager(ManagerOptions(data_dir=tmp_path / "mgr", secret=SECRET, n=n, w=1, r=1, d=1))
    app = mgr.build()
    try:
        async with TestServer(app, host="127.0.0.1") as server, TestClient[Any, Any](server) as client:
            yield mgr, client
    finally:
        await mgr.stop()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def adm(client: TestClient[Any, Any], command: str, **args: Any) -> Any:
    resp = await client.post(f"/adm/{command}", json=args, headers=AUTH)
    return resp.status, await resp.json()


async def register(client: TestClient[Any, Any], req: RegisterRequest) -> Any:
    resp = await client.post("/int/register", data=encoder.encode(req), headers={**AUTH, "Content-Type": MSGPACK})
    assert resp.status == 200, await resp.text()
    return view_decoder.decode(await resp.read())


def test_every_call_needs_the_secret(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            for headers in ({}, {SECRET_HEADER: "wrong"}):
                assert (await client.get("/int/cluster", headers=headers)).status == 403
                assert (await client.get("/int/state", headers=headers)).status == 403
                assert (await client.post("/adm/status", json={}, headers=headers)).status == 403
                body = encoder.encode(RegisterRequest("storage", "s1", "127.0.0.1:1"))
                assert (await client.post("/int/register", data=body, headers=headers)).status == 403
            assert (await client.get("/int/cluster", headers=AUTH)).status == 200
            status, answer = await adm(client, "status")
            assert status == 200 and answer["result"]["mode"] == "cluster"
    run(test)


def test_register_heartbeat_and_ring_in_answers(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (mgr, client):
            view = await register(client, RegisterRequest("storage", "s1", "127.0.0.1:1"))
            assert view.state == "pending" and [n.state for n in view.nodes] == ["attached"]
            ghost = encoder.encode(HeartbeatRequest("storage", "ghost"))
            assert (await client.post("/int/heartbeat", data=ghost, headers=AUTH)).status == 404
            status, answer = await adm(client, "start")
            assert status == 200, answer
            ring_hash = answer["result"]["ring_hash"]
            assert answer["result"]["pushed"][0]["ok"] is False  # nobody listens at 127.0.0.1:1

            async def beat(current: str) -> Any:
                body = encoder.encode(HeartbeatRequest("storage", "s1", current, current))
                resp = await client.post("/int/heartbeat", data=body, headers=AUTH)
                assert resp.status == 200
                return view_decoder.decode(await resp.read())

            stale = await beat("")
            assert stale.ring_hash_current == ring_hash and stale.ring_current  # differs: rings included
            fresh = await beat(ring_hash)
            assert fresh.ring_current == b"" and fresh.nodes[0].state == "running"
            _, answer = await adm(client, "status")
            assert answer["result"]["nodes"][0]["ring_current"] == ring_hash
            assert mgr.cluster.disagreeing() == []
    run(test)


def test_state_long_poll_wakes_on_admin_changes(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (mgr, client):
            resp = await client.get("/int/state", headers=AUTH)
            state = await resp.json()
            since = state["version"]
            assert [u["user_id"] for u in state["users"]] == ["root"]
            assert "localhost" in state["endpoints"]

            # nothing changes: a short poll answers the same version when its wait is over
            resp = await client.get(f"/int/state?since={since}&wait=0.05", headers=AUTH)
            assert (await resp.json())["version"] == since

            poll = asyncio.ensure_future(client.get(f"/int/state?since={since}&wait=60", headers=AUTH))
            assert mgr.watch is not None
            while mgr.watch.waiting == 0:  # parked on the server before we change anything
                await asyncio.sleep(0)
            status, created = await adm(client, "create-user", user_id="alice")
            assert status == 200
            resp = await asyncio.wait_for(poll, 10)
            state = await resp.json()
            assert state["version"] > since
            alice = next(u for u in state["users"] if u["user_id"] == "alice")
            assert alice["secret_key"] == created["result"]["secret_key"]

            # an older `since` answers at once
            resp = await asyncio.wait_for(client.get(f"/int/state?since={since}&wait=60", headers=AUTH), 10)
            assert (await resp.json())["version"] == state["version"]
    run(test)


def test_bucket_changes_from_gateways(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            async def bucket(**args: Any) -> tuple[int, Any]:
                resp = await client.post("/int/bucket", json=args, headers=AUTH)
                return resp.status, await resp.json()

            status, answer = await bucket(op="create", name="photos", owner="KEY1", acl="public-read",
                                          region="eu-west-1")
            assert status == 200 and answer["ok"] and answer["result"]["region"] == "eu-west-1"
            assert (await bucket(op="create", name="photos", owner="KEY1"))[1]["error"] == "owned"
            assert (await bucket(op="create", name="photos", owner="KEY2"))[1]["error"] == "exists"
            grants = [{"grantee_type": "CanonicalUser", "grantee": "KEY1", "permission": "FULL_CONTROL"}]
            status, answer = await bucket(op="acl", name="photos", acl="custom", grants=grants)
            assert status == 200 and answer["result"]["grants"] == grants
            resp = await client.get("/int/state", headers=AUTH)
            assert (await resp.json())["buckets"][0]["acl"] == "custom"
            assert (await bucket(op="delete", name="photos"))[1]["ok"]
            status, answer = await bucket(op="delete", name="photos")
            assert status == 404 and answer == {"ok": False, "error": "not_found", "message": "no bucket 'photos'"}
            assert (await bucket(op="rename", name="x"))[1]["error"] == "bad_request"
    run(test)


def test_update_consistency_level_over_http(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path, n=3) as (_, client):
            status, answer = await adm(client, "update-consistency-level", w=2, r=1, d=2)
            assert status == 200 and answer["result"] == {"n": 3, "w": 2, "r": 1, "d": 2}
            status, answer = await adm(client, "update-consistency-level", w=4, r=1, d=2)
            assert status == 400 and answer["error"] == "bad_argument"
            status, answer = await adm(client, "start")
            assert status == 400 and answer["error"] == "not_enough_nodes"
    run(test)


class FakeGateway:
    """A stand-in gateway (the real one is tested through a cluster in tests/cluster): records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/adm/{command}", self.adm)

    async def adm(self, request: web.Request) -> web.Response:
        self.calls.append((request.match_info["command"], await request.json()))
        return web.json_response({"ok": True, "result": {"answered_by": request.url.port}})


async def storage_node(base: Path, name: str) -> StorageNode:
    """A real storage node on a free loopback port, without a manager of its own (registered by hand)."""
    node = StorageNode(StorageNodeOptions(name=name, data_dir=base / name, manager=None, address=("127.0.0.1", 0),
                                          containers=2, sync=False, secret=SECRET))  # fmt: skip
    await node.start()
    return node


def test_start_push_whereis_forwarding_purge(tmp_path: Path) -> None:
    async def test() -> None:
        key = b"photos/cat.jpg"
        nodes = [await storage_node(tmp_path, f"s{i}") for i in range(3)]
        gateway = FakeGateway()
        gw_server = TestServer(gateway.app, host="127.0.0.1")
        await gw_server.start_server()
        try:
            for node in nodes[:2]:  # s2 misses the key
                await node.store.put(0, key, b"meow", clock=7, timestamp=7)
            # more keys, for the node's usage below
            for node in nodes:
                for i in range(300):
                    await node.store.put(0, b"photos/many/%03d" % i, b"x", clock=8, timestamp=8)
                await node.store.put(0, b"photox", b"not in any bucket", clock=9, timestamp=9)
            async with manager(tmp_path, n=3) as (_, client):
                for node in nodes:
                    await register(client, RegisterRequest("storage", node.options.name, f"127.0.0.1:{node.port}"))
                await register(client, RegisterRequest("gateway", "g0", "127.0.0.1:1",
                                                       admin_address=f"127.0.0.1:{gw_server.port}"))
                status, answer = await adm(client, "start")
                assert status == 200 and all(p["ok"] for p in answer["result"]["pushed"])
                for node in nodes:  # each real node took the pushed ring
                    assert node.cluster.rings is not None
                    assert node.cluster.rings.current.hash == answer["result"]["ring_hash"]

                status, answer = await adm(client, "whereis", path="photos/cat.jpg")
                assert status == 200
                rows = {r["node"]: r for r in answer["result"]["replicas"]}
                assert set(rows) == {"s0", "s1", "s2"}
                assert rows["s0"]["etag"] == hashlib.md5(b"meow").hexdigest() and rows["s0"]["clock"] == 7
                assert rows["s0"]["size"] == 4 and rows["s0"]["tombstone"] is False and rows["s0"]["cnumber"] == 0
                assert rows["s1"]["clock"] == 7
                assert rows["s2"]["status"] == "missing"

                status, answer = await adm(client, "du", node="s1")  # the node's own usage
                assert status == 200 and sum(c["active_count"] for c in answer["result"]) == 302
                status, answer = await adm(client, "compact-start", node="s1", containers="9")
                assert status == 400 and answer["error"] == "bad_argument" and "no such container" in answer["message"]
                status, answer = await adm(client, "mq-stats", node="s1")
                assert status == 200 and answer["result"]["queues"][0]["length"] == 0
                status, answer = await adm(client, "mq-stats", node="nope")
                assert status == 404 and answer["error"] == "not_found"

                # delete-bucket goes to a gateway's admin listener (S3 DeleteBucket's fenced path), with
                # the manager's record of the bucket (the gateway's view may be older)
                assert (await adm(client, "create-user", user_id="u", access_key="UKEY"))[0] == 200
                assert (await adm(client, "add-bucket", bucket="photos", access_key="UKEY"))[0] == 200
                assert (await adm(client, "delete-bucket", bucket="photos"))[0] == 200
                command, sent = gateway.calls[-1]
                assert command == "delete-bucket"
                assert (sent["record"]["name"], sent["record"]["owner"]) == ("photos", "UKEY")

                status, answer = await adm(client, "purge-cache", path="photos/cat.jpg")
                assert status == 200 and answer["result"][0]["gateway"] == "g0" and answer["result"][0]["ok"]
                assert gateway.calls[-1] == ("purge-cache", {"path": "photos/cat.jpg", "bucket": "photos",
                                                             "key": "cat.jpg"})
        finally:
            await gw_server.close()
            for node in nodes:
                await node.stop()
    run(test)


def test_delete_bucket_is_refused_without_a_gateway(tmp_path: Path) -> None:
    # only a gateway can delete a bucket the fenced way: without one the bucket stays, and says why
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            assert (await adm(client, "create-user", user_id="u", access_key="UKEY"))[0] == 200
            assert (await adm(client, "add-bucket", bucket="kept", access_key="UKEY"))[0] == 200
            status, answer = await adm(client, "delete-bucket", bucket="kept")
            assert status == 503 and answer["error"] == "unavailable" and "gateway" in answer["message"]
            status, answer = await adm(client, "get-buckets")
            assert [b["name"] for b in answer["result"]] == ["kept"]
    run(test)


def test_view_decodes_with_msgspec(tmp_path: Path) -> None:
    # GET /int/cluster is the same ClusterView the nodes decode
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            resp = await client.get("/int/cluster", headers=AUTH)
            view = msgspec.msgpack.decode(await resp.read())
            assert view["state"] == "pending" and view["consistency"] == {"n": 1, "w": 1, "r": 1, "d": 1}
    run(test)
