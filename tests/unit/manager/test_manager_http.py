"""The manager's HTTP surface over real loopback HTTP: secret, register/heartbeat, long-poll, buckets,
and the commands that talk to nodes (ring push, whereis, forwarding, purge-cache) against small
stand-in node servers."""

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
    parse_key_param,
    to_scan_items,
    view_decoder,
)
from leofs.manager.service import Manager, ManagerOptions
from leofs.storage.model import Entry

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


class FakeNode:
    """A stand-in storage node or gateway: serves what the manager calls, records what it receives."""

    def __init__(self, entries: dict[bytes, Entry] | None = None) -> None:
        self.entries = entries or {}
        self.views: list[Any] = []
        self.calls: list[tuple[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_get("/meta", self.meta)
        self.app.router.add_get("/scan", self.scan)
        self.app.router.add_post("/int/ring", self.ring)
        self.app.router.add_post("/adm/{command}", self.adm)

    async def meta(self, request: web.Request) -> web.Response:
        assert request.headers[SECRET_HEADER] == SECRET
        entry = self.entries.get(parse_key_param(request.query["key"]))
        if entry is None:
            return web.Response(status=404)
        return web.Response(body=encoder.encode(entry), content_type=MSGPACK)

    async def scan(self, request: web.Request) -> web.Response:
        prefix = parse_key_param(request.query["prefix"])
        ns = int(request.query["ns"])
        found = [e for k, e in sorted(self.entries.items()) if k.startswith(prefix) and e.ns == ns]
        return web.Response(body=encoder.encode(to_scan_items(list(found[:1]))), content_type=MSGPACK)

    async def ring(self, request: web.Request) -> web.Response:
        self.views.append(view_decoder.decode(await request.read()))
        return web.Response()

    async def adm(self, request: web.Request) -> web.Response:
        self.calls.append((request.match_info["command"], await request.json()))
        if request.match_info["command"] == "compact-start":
            return web.json_response({"ok": False, "error": "bad_argument", "message": "no such container"},
                                     status=400)
        return web.json_response({"ok": True, "result": {"answered_by": request.url.port}})


def entry(key: bytes, data: bytes, clock: int) -> Entry:
    return Entry(ns=0, key=key, clock=clock, timestamp=clock, tombstone=False, size=len(data),
                 md5=hashlib.md5(data).digest(), meta=b"", cindex=0, cnumber=0, csize=0, container=0,
                 generation=0, data_offset=0, crc=0)


def test_start_push_whereis_forwarding_purge(tmp_path: Path) -> None:
    async def test() -> None:
        key = b"photos/cat.jpg"
        nodes = [FakeNode({key: entry(key, b"meow", 7)}), FakeNode({key: entry(key, b"meow", 7)}), FakeNode()]
        gateway = FakeNode()
        servers = [TestServer(n.app, host="127.0.0.1") for n in [*nodes, gateway]]
        for s in servers:
            await s.start_server()
        try:
            async with manager(tmp_path, n=3) as (_, client):
                for i, s in enumerate(servers[:3]):
                    await register(client, RegisterRequest("storage", f"s{i}", f"127.0.0.1:{s.port}"))
                await register(client, RegisterRequest("gateway", "g0", "127.0.0.1:1",
                                                       admin_address=f"127.0.0.1:{servers[3].port}"))
                status, answer = await adm(client, "start")
                assert status == 200 and all(p["ok"] for p in answer["result"]["pushed"])
                for node in nodes:
                    assert node.views[-1].ring_hash_current == answer["result"]["ring_hash"]
                    assert node.views[-1].ring_current

                status, answer = await adm(client, "whereis", path="photos/cat.jpg")
                assert status == 200
                rows = {r["node"]: r for r in answer["result"]["replicas"]}
                assert set(rows) == {"s0", "s1", "s2"}
                assert rows["s0"]["etag"] == hashlib.md5(b"meow").hexdigest() and rows["s0"]["clock"] == 7
                assert rows["s0"]["size"] == 4 and rows["s0"]["tombstone"] is False and rows["s0"]["cnumber"] == 0
                assert rows["s2"]["status"] == "missing"

                status, answer = await adm(client, "du", node="s1")
                assert status == 200 and answer["result"] == {"answered_by": servers[1].port}
                assert nodes[1].calls == [("du", {})]
                status, answer = await adm(client, "compact-start", node="s1", containers="9")
                assert status == 400 and answer["error"] == "bad_argument" and "no such container" in answer["message"]
                assert nodes[1].calls[-1] == ("compact-start", {"containers": "9"})
                status, answer = await adm(client, "mq-stats", node="nope")
                assert status == 404 and answer["error"] == "not_found"

                # delete-bucket asks the running nodes whether the bucket is empty
                assert (await adm(client, "create-user", user_id="u", access_key="UKEY"))[0] == 200
                for name in ("photos", "empty"):
                    assert (await adm(client, "add-bucket", bucket=name, access_key="UKEY"))[0] == 200
                status, answer = await adm(client, "delete-bucket", bucket="photos")
                assert status == 409 and answer["error"] == "not_empty"
                assert (await adm(client, "delete-bucket", bucket="empty"))[0] == 200

                status, answer = await adm(client, "purge-cache", path="photos/cat.jpg")
                assert status == 200 and answer["result"][0]["gateway"] == "g0" and answer["result"][0]["ok"]
                assert gateway.calls == [("purge-cache", {"path": "photos/cat.jpg", "bucket": "photos",
                                                          "key": "cat.jpg"})]
        finally:
            for s in servers:
                await s.close()
    run(test)


def test_view_decodes_with_msgspec(tmp_path: Path) -> None:
    # GET /int/cluster is the same ClusterView the nodes decode
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            resp = await client.get("/int/cluster", headers=AUTH)
            view = msgspec.msgpack.decode(await resp.read())
            assert view["state"] == "pending" and view["consistency"] == {"n": 1, "w": 1, "r": 1, "d": 1}
    run(test)
