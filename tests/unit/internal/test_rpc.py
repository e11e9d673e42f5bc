"""The binary protocol's client against real storage nodes (and misbehaving peers) on loopback:
object calls and their statuses, multiplexing, the handshake (secret, version, throttling),
garbage and oversized frames on the node's port, a peer that stops reading, a peer that dies
mid-frame."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from leofs.internal import wire
from leofs.internal.frames import HIGH_WATER, SEND_PIECE
from leofs.internal.messages import PutHeader
from leofs.internal.rpc import RpcClient, RpcError, RpcRefused
from leofs.internal.secret import FAILURE_BURST
from tests.unit.node.nodetest_helpers import SECRET, TestCluster, run_cluster

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _req(key: bytes, **fields: object) -> wire.Request:
    return wire.Request(0, key, **fields)  # type: ignore[arg-type]


def test_object_calls_and_their_statuses(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        rpc = RpcClient(SECRET)
        try:
            s1 = c.addr("s1")
            big = os.urandom(2 * 1024 * 1024 + 3)  # above verify_below: the node sends it with sendfile
            reply, _ = await rpc.call(s1, wire.PUT, _req(b"k/big", put=PutHeader(meta=b"M", clock=1000)), big,
                                      timeout=10)  # fmt: skip
            assert reply.status == 200 and reply.applied and reply.entry is not None and reply.entry.size == len(big)
            reply, data = await rpc.call(s1, wire.GET, _req(b"k/big"), timeout=10)
            assert reply.status == 200 and data == big and reply.entry is not None and reply.entry.meta == b"M"
            # replies received through the client's reused buffer stay intact once delivered
            other = os.urandom(len(big) - 1000)
            await rpc.call(s1, wire.PUT, _req(b"k/other", put=PutHeader(clock=1000)), other, timeout=10)
            answers = await asyncio.gather(*(rpc.call(s1, wire.GET, _req(k), timeout=10, reply_size=len(big))
                                             for k in (b"k/big", b"k/other", b"k/big")))  # fmt: skip
            assert [a[1] for a in answers] == [big, other, big]
            reply, data = await rpc.call(s1, wire.GET, _req(b"k/big", start=5, length=300000, clock=1000), timeout=10)
            assert (reply.status, bytes(data)) == (200, big[5:300005])
            assert (await rpc.call(s1, wire.GET, _req(b"k/big", clock=999), timeout=10))[0].status == 409
            assert (await rpc.call(s1, wire.GET, _req(b"k/big", start=len(big) + 1), timeout=10))[0].status == 416
            reply, data = await rpc.call(s1, wire.GET, _req(b"k/big", match=1000), timeout=10)
            assert reply.status == 304 and not data and reply.entry is not None and reply.entry.clock == 1000
            # an older version arriving late is not applied
            reply, _ = await rpc.call(s1, wire.PUT, _req(b"k/big", put=PutHeader(clock=900)), b"old", timeout=10)
            assert reply.status == 200 and not reply.applied and reply.entry is not None and reply.entry.clock == 1000
            assert (await rpc.call(s1, wire.META, _req(b"k/none"), timeout=10))[0].status == 404
            assert (await rpc.call(s1, wire.PUT, _req(b"k/x"), b"x", timeout=10))[0].status == 400  # no put header
            assert (await rpc.call(s1, wire.PUT, _req(b"k/x", put=PutHeader()), b"x", timeout=10))[0].status == 400
            reply, _ = await rpc.call(s1, wire.DELETE, _req(b"k/big", clock=2000, timestamp=1), timeout=10)
            assert reply.status == 200 and reply.entry is not None and reply.entry.tombstone
            assert (await rpc.call(s1, wire.GET, _req(b"k/big"), timeout=10))[0].status == 404
            # coordinated: the quorum runs on s1 (its replica calls use the binary protocol too)
            reply, _ = await rpc.call(s1, wire.PUT, _req(b"k/c", coordinate=True, put=PutHeader()), b"data",
                                      timeout=10)  # fmt: skip
            assert reply.status == 200 and reply.written is not None
            for node in ("s2", "s3"):
                reply, data = await rpc.call(c.addr(node), wire.GET, _req(b"k/c", coordinate=True), timeout=10)
                assert (reply.status, bytes(data)) == (200, b"data")
            late = _req(b"k/c", coordinate=True, put=PutHeader(), deadline=time.time() - 1)
            assert (await rpc.call(s1, wire.PUT, late, b"late", timeout=10))[0].status == 503
            reply, _ = await rpc.call(s1, wire.DELETE, _req(b"k/c", coordinate=True, expect=12345), timeout=10)
            assert reply.status == 412
            # many calls at once share the pool's connections, each answered by its own id
            replies = await asyncio.gather(*(
                rpc.call(s1, wire.PUT, _req(b"m/%d" % i, coordinate=True, put=PutHeader()), b"%d" % i, timeout=20)
                for i in range(64)))  # fmt: skip
            assert all(r.status == 200 and r.written is not None and r.written.entry.key == b"m/%d" % i
                       for i, (r, _) in enumerate(replies))  # fmt: skip
            assert len(c.nodes["s1"].rpc_server.connections) <= 2
        finally:
            await rpc.close()

    run_cluster(tmp_path, body)


async def _raw(address: str, payload: bytes) -> bytes:
    """What the node answers ``payload`` with, until it closes the connection (bounded: a node
    that keeps it open fails the test with a timeout)."""
    host, port = address.split(":")
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, payload)
        out = b""
        try:
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10):
                out += chunk
        except ConnectionResetError:  # an aborted connection (unread bytes): closed all the same
            pass
        return out


async def _handshake(address: str, secret: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(wire.PREFACE)
    _, _, hlen, _ = wire.parse_frame_header(await reader.readexactly(wire.FRAME.size))
    hello = wire.hello_decoder.decode(await reader.readexactly(hlen))
    nonce = os.urandom(wire.NONCE_BYTES)
    writer.write(wire.frame_prefix(wire.AUTH, 0, wire.encode(wire.Auth(nonce, wire.client_proof(secret, hello.nonce,
                                                                                               nonce)))))  # fmt: skip
    kind, _, hlen, _ = wire.parse_frame_header(await reader.readexactly(wire.FRAME.size))
    assert kind == wire.AUTH_OK
    await reader.readexactly(hlen)
    return reader, writer


def _refusal(answer: bytes) -> wire.Reply:
    kind, _, hlen, _ = wire.parse_frame_header(answer)
    assert kind == wire.REFUSED
    return wire.reply_decoder.decode(answer[wire.FRAME.size : wire.FRAME.size + hlen])


def test_garbage_versions_oversized_frames_and_wrong_secrets_are_refused(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        s1 = c.addr("s1")
        good = RpcClient(SECRET)
        try:
            reply, _ = await good.call(s1, wire.PUT, _req(b"g", put=PutHeader(clock=5)), b"v", timeout=10)
            assert reply.status == 200
            # another version byte: a clear refusal, then the node hangs up
            refused = _refusal(await _raw(s1, wire.MAGIC + b"\x02"))
            assert refused.status == 400 and "version 2" in refused.message
            # garbage after a NUL; random bytes (HTTP's parser answers 400); a request before the handshake
            assert _refusal(await _raw(s1, b"\x00" + os.urandom(4000))).status == 400
            assert (await _raw(s1, b"\x01" + os.urandom(4000))).split(b"\r\n")[0].endswith(b" 400 Bad Request")
            early = wire.PREFACE + wire.frame_prefix(wire.META, 1, wire.encode(_req(b"g")))
            answer = await _raw(s1, early)
            assert wire.parse_frame_header(answer)[0] == wire.HELLO and len(answer) < 200  # and no reply: closed
            # a large (legal) frame before the handshake: closed at once, nothing buffered for a stranger
            answer = await _raw(s1, wire.PREFACE + wire.FRAME.pack(wire.PUT, 1, 10, 32 * 1024 * 1024) + b"x" * 100)
            assert wire.parse_frame_header(answer)[0] == wire.HELLO and len(answer) < 200
            # an oversized frame after a good handshake: the connection is closed, nothing allocated
            reader, writer = await _handshake(s1, SECRET.encode())
            writer.write(wire.FRAME.pack(wire.PUT, 1, 10, wire.MAX_DATA + 1))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            # a wrong secret: refused (403), then throttled (429) like HTTP's 403s, by the same guard
            statuses = []
            for _ in range(int(FAILURE_BURST) + 1):
                bad = RpcClient("not-the-cluster-secret-at-all")
                with pytest.raises(RpcRefused) as info:
                    await bad.call(s1, wire.META, _req(b"g"), timeout=10)
                statuses.append(str(info.value))
                await bad.close()
            assert "(403)" in statuses[0] and "(429)" in statuses[-1]
            async with c.client.session.get(
                f"http://{s1}/int/health", headers={"X-Leofs-Cluster-Secret": "nope-nope-nope-nope"}
            ) as resp:
                assert resp.status == 429
            # through all of it the node kept serving, on both protocols
            reply, data = await good.call(s1, wire.GET, _req(b"g"), timeout=10)
            assert (reply.status, bytes(data)) == (200, b"v")
            async with c.client.request("GET", s1, "/int/health") as resp:
                assert resp.status == 200
        finally:
            await good.close()

    run_cluster(tmp_path, body, names=["s1"], n=1, w=1, r=1, d=1)


async def _fake_node(peer: Peer, *, version: int = wire.VERSION) -> tuple[asyncio.AbstractServer, str]:
    """A node that completes the handshake, then does what ``peer`` does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert await reader.readexactly(len(wire.PREFACE)) == wire.PREFACE
            nonce = os.urandom(wire.NONCE_BYTES)
            writer.write(wire.frame_prefix(wire.HELLO, 0, wire.encode(wire.Hello(version, nonce))))
            _, _, hlen, _ = wire.parse_frame_header(await reader.readexactly(wire.FRAME.size))
            auth = wire.auth_decoder.decode(await reader.readexactly(hlen))
            proof = wire.server_proof(SECRET.encode(), nonce, auth.nonce)
            writer.write(wire.frame_prefix(wire.AUTH_OK, 0, wire.encode(wire.AuthOk(proof))))
            await peer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_peer_that_stops_reading_times_the_call_out_without_buffering_it() -> None:
    async def stop_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)  # never reads: the kernel buffers fill, then the sender must wait

    async def main() -> None:
        server, address = await _fake_node(stop_reading)
        rpc = RpcClient(SECRET, size=1)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await rpc.call(address, wire.PUT, _req(b"k", put=PutHeader()), bytes(48 * 1024 * 1024), timeout=1.0)
            assert time.monotonic() - started < 10
            # the frame was cut half-way: that connection is gone, and held at most a piece past its mark
            slot = rpc._pools[address][0]
            assert slot is not None and slot.done()
            old = slot.result()
            assert old.closed and old.transport is not None
            assert old.transport.get_write_buffer_size() <= HIGH_WATER + SEND_PIECE
            # a small call on a new connection times out too (the peer still reads nothing), within its bound
            with pytest.raises(TimeoutError):
                await rpc.call(address, wire.META, _req(b"k"), timeout=0.5)
        finally:
            await rpc.close()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_peer_dying_mid_frame_fails_every_pending_call_and_the_next_call_reconnects() -> None:
    connections = []

    async def die_mid_frame(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        if len(connections) == 1:
            await reader.readexactly(3 * 1024 * 1024)  # the small frames, and part of the big one
            return  # dies: the connection is aborted
        _, rid, hlen, _ = wire.parse_frame_header(await reader.readexactly(wire.FRAME.size))
        await reader.readexactly(hlen)
        writer.write(wire.frame_prefix(wire.REPLY, rid, wire.encode(wire.Reply(404))))
        await asyncio.sleep(60)

    async def main() -> None:
        server, address = await _fake_node(die_mid_frame)
        rpc = RpcClient(SECRET, size=1)
        try:
            calls = [asyncio.ensure_future(rpc.call(address, wire.META, _req(b"m%d" % i), timeout=20))
                     for i in range(3)]  # fmt: skip
            calls.append(asyncio.ensure_future(rpc.call(address, wire.PUT, _req(b"big", put=PutHeader()),
                                                        bytes(8 * 1024 * 1024), timeout=20)))  # fmt: skip
            started = time.monotonic()
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, RpcError) for r in results), results
            assert time.monotonic() - started < 10  # failed at once, not at the timeout
            reply, _ = await rpc.call(address, wire.META, _req(b"again"), timeout=20)  # on a new connection
            assert reply.status == 404 and len(connections) == 2
        finally:
            await rpc.close()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_peer_with_another_version_is_refused_by_the_client() -> None:
    async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        server, address = await _fake_node(idle, version=wire.VERSION + 1)
        rpc = RpcClient(SECRET)
        try:
            with pytest.raises(RpcRefused, match="version 2"):
                await rpc.call(address, wire.META, _req(b"k"), timeout=5)
            # a port with nothing behind it: a connection error, not a hang
            with pytest.raises(ConnectionError):
                await rpc.call("127.0.0.1:1", wire.META, _req(b"k"), timeout=5)
        finally:
            await rpc.close()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_silent_and_unauthenticated_connections_are_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from leofs.node import listener, rpc_api

    monkeypatch.setattr(rpc_api, "HANDSHAKE_TIMEOUT", 0.5)
    monkeypatch.setattr(listener, "FIRST_BYTE_TIMEOUT", 0.5)

    async def body(c: TestCluster) -> None:
        s1 = c.addr("s1")
        started = time.monotonic()
        assert await _raw(s1, b"") == b""  # (a node that kept them open would fail _raw's 10 s bound)
        answer = await _raw(s1, wire.PREFACE)  # a preface, then nothing: HELLO, then closed
        assert wire.parse_frame_header(answer)[0] == wire.HELLO
        assert time.monotonic() - started < 8
        assert not c.nodes["s1"].rpc_server.connections
        rpc = RpcClient(SECRET)
        try:  # a client that authenticated stays connected past the handshake bound
            assert (await rpc.call(s1, wire.META, _req(b"k"), timeout=10))[0].status == 404
            await asyncio.sleep(1.0)
            assert (await rpc.call(s1, wire.META, _req(b"k"), timeout=10))[0].status == 404
            assert len(c.nodes["s1"].rpc_server.connections) == 1
        finally:
            await rpc.close()

    run_cluster(tmp_path, body, names=["s1"], n=1, w=1, r=1, d=1)
