"""Internal TLS (leofs.internal.tls) between real storage nodes on loopback: binary and HTTP calls
over mutual TLS, large bodies read with pread instead of sendfile, and every mismatch (another CA,
no client certificate, the wrong host, plaintext on either end) failing fast with a clear error."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme

from leofs.internal import wire
from leofs.internal.client import InternalClient
from leofs.internal.messages import Consistency, PutHeader, encoder
from leofs.internal.rpc import RpcClient, RpcError
from leofs.internal.tls import InternalTls, TlsConfigError
from leofs.node.node import StorageNodeOptions
from tests.support.tls import member_files
from tests.unit.node.nodetest_helpers import SECRET, TestCluster, eventually

#: a mismatch must fail well within this (seconds): never a hang until some long timeout
FAST = 5.0


class TlsCluster(TestCluster):
    """TestCluster whose nodes (and the test's HTTP client) use ``tls``."""

    __test__ = False

    def __init__(self, base: Path, names: list[str], tls: InternalTls | None) -> None:
        super().__init__(base, names, Consistency(n=len(names), w=min(2, len(names)), r=1, d=min(2, len(names))))
        self.tls = tls
        self.client = InternalClient(SECRET, timeout=10.0, tls=tls.client_context() if tls is not None else None)

    def options(self, name: str) -> StorageNodeOptions:
        return dataclasses.replace(super().options(name), tls=self.tls)


def _run(tmp: Path, tls: InternalTls | None, test: Callable[[TlsCluster], Awaitable[None]],
         names: tuple[str, ...] = ("s1", "s2", "s3")) -> None:  # fmt: skip
    async def main() -> None:
        cluster = TlsCluster(tmp, list(names), tls)
        try:
            for name in names:
                await cluster.start(name)
            await cluster.push_view()
            await asyncio.wait_for(test(cluster), 50)
        finally:
            await cluster.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def member(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> InternalTls:
    tls = InternalTls.from_options(*member_files(ca, tmp_path_factory.mktemp("tls"), "node"))
    assert tls is not None
    return tls


def _req(key: bytes, **fields: object) -> wire.Request:
    return wire.Request(0, key, **fields)  # type: ignore[arg-type]


def test_binary_and_http_calls_over_mutual_tls(tmp_path: Path, member: InternalTls) -> None:
    async def body(c: TlsCluster) -> None:
        rpc = RpcClient(SECRET, tls=member.client_context())
        try:
            s1 = c.addr("s1")
            # above verify_below: a plain node would sendfile these; over TLS they are pread in pieces
            bigs = {b"k/a": os.urandom(3 * 1024 * 1024 + 7), b"k/b": os.urandom(2 * 1024 * 1024 + 11)}
            for key, data in bigs.items():
                reply, _ = await rpc.call(s1, wire.PUT, _req(key, put=PutHeader(clock=1000)), data, timeout=10)
                assert reply.status == 200 and reply.applied
            # concurrent reads of one container log on several connections: no reply reads another's
            # bytes (asyncio's sendfile fallback would seek the descriptor's shared offset)
            keys = [b"k/a", b"k/b"] * 3
            readers = [RpcClient(SECRET, tls=member.client_context()) for _ in keys]
            try:
                answers = await asyncio.gather(*(r.call(s1, wire.GET, _req(k), timeout=30, reply_size=len(bigs[k]))
                                                 for r, k in zip(readers, keys, strict=True)))  # fmt: skip
            finally:
                for r in readers:
                    await r.close()
            assert [bytes(a[1]) == bigs[k] for a, k in zip(answers, keys, strict=True)] == [True] * len(keys)
            reply, data = await rpc.call(s1, wire.GET, _req(b"k/a", start=12345, length=2 * 1024 * 1024), timeout=10)
            assert (reply.status, bytes(data)) == (200, bigs[b"k/a"][12345 : 12345 + 2 * 1024 * 1024])
            # coordinated: s1 writes the other replicas over TLS itself
            reply, _ = await rpc.call(s1, wire.PUT, _req(b"k/c", coordinate=True, put=PutHeader()), b"data",
                                      timeout=10)  # fmt: skip
            assert reply.status == 200 and reply.written is not None
            for node in ("s2", "s3"):
                reply, data = await rpc.call(c.addr(node), wire.GET, _req(b"k/c", coordinate=True), timeout=10)
                assert (reply.status, bytes(data)) == (200, b"data")
            # the node's end really is TLS, on the binary connections
            assert c.nodes["s1"].rpc_server.connections
            assert all(conn.transport is not None and conn.transport.get_extra_info("ssl_object") is not None
                       for conn in c.nodes["s1"].rpc_server.connections)  # fmt: skip
            # HTTP on the same port, over TLS: the large body comes in pread pieces too
            got = await asyncio.gather(*(c.get("s1", k) for k in keys))
            whole = [(status, data == bigs[k]) for (status, data, _), k in zip(got, keys, strict=True)]
            assert whole == [(200, True)] * len(keys)
        finally:
            await rpc.close()

    _run(tmp_path, member, body)


async def _fails_fast(call: Awaitable[object]) -> BaseException:
    """The error ``call`` fails with, within FAST seconds (a hang fails the test)."""
    try:
        await asyncio.wait_for(call, FAST)
    except (OSError, aiohttp.ClientError) as exc:
        return exc
    raise AssertionError("the call succeeded")


def test_mismatches_fail_fast_with_a_clear_error(tmp_path: Path, ca: trustme.CA, member: InternalTls) -> None:
    rogue = InternalTls.from_options(*member_files(trustme.CA(), tmp_path / "rogue", "rogue"))
    assert rogue is not None
    no_cert = ssl.create_default_context(cafile=str(member.ca))  # trusts the CA, presents nothing

    async def body(c: TlsCluster) -> None:
        s1 = c.addr("s1")
        good = RpcClient(SECRET, tls=member.client_context())
        clients = [RpcClient(SECRET, tls=rogue.client_context()), RpcClient(SECRET, tls=no_cert), RpcClient(SECRET)]
        try:
            assert (await good.call(s1, wire.META, _req(b"x"), timeout=10))[0].status == 404
            # a certificate of another CA, none at all, or plaintext: the node refuses the connection
            for client in clients:
                error = await _fails_fast(client.call(s1, wire.META, _req(b"x"), timeout=30, connect_timeout=30))
                assert isinstance(error, RpcError), repr(error)
            # the node's certificate names 127.0.0.1, not "localhost": the client refuses the node
            port = s1.rsplit(":", 1)[1]
            error = await _fails_fast(good.call(f"localhost:{port}", wire.META, _req(b"x"), timeout=30,
                                                connect_timeout=30))  # fmt: skip
            assert isinstance(error, RpcError) and "TLS handshake" in str(error), error
            # plaintext HTTP to the TLS port: closed, no HTTP answer
            plain = InternalClient(SECRET, timeout=30)
            try:
                error = await _fails_fast(_http_health(plain, s1))
                assert isinstance(error, aiohttp.ClientError), repr(error)
            finally:
                await plain.close()
            loop = asyncio.get_running_loop()
            with socket.socket() as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", int(port)))
                await loop.sock_sendall(sock, b"GET /int/health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                try:
                    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), FAST):
                        answer += chunk
                except ConnectionResetError:
                    pass
                assert b"HTTP/" not in answer
            # and through it all the node kept serving TLS clients
            assert (await good.call(s1, wire.META, _req(b"x"), timeout=10))[0].status == 404
        finally:
            for client in [good, *clients]:
                await client.close()

    _run(tmp_path / "tls", member, body, names=("s1",))


async def _http_health(client: InternalClient, address: str) -> None:
    async with client.request("GET", address, "/int/health") as resp:
        await resp.read()


def test_a_tls_client_to_a_plaintext_node_fails_fast(tmp_path: Path, member: InternalTls) -> None:
    async def body(c: TlsCluster) -> None:
        s1 = c.addr("s1")
        rpc = RpcClient(SECRET, tls=member.client_context())
        http = InternalClient(SECRET, timeout=30, tls=member.client_context())
        try:
            error = await _fails_fast(rpc.call(s1, wire.META, _req(b"x"), timeout=30, connect_timeout=30))
            assert isinstance(error, RpcError) and "TLS handshake" in str(error), error
            error = await _fails_fast(_http_health(http, s1))
            assert isinstance(error, aiohttp.ClientError), repr(error)
        finally:
            await rpc.close()
            await http.close()

    _run(tmp_path, None, body, names=("s1",))


class MixedCluster(TlsCluster):
    """Nodes with TLS but ``plain``, which has none: a member configured unlike the others."""

    __test__ = False

    def __init__(self, base: Path, names: list[str], tls: InternalTls, plain: str) -> None:
        super().__init__(base, names, tls)
        self.plain = plain
        self.plain_client = InternalClient(SECRET, timeout=10.0)

    def options(self, name: str) -> StorageNodeOptions:
        return dataclasses.replace(super().options(name), tls=None if name == self.plain else self.tls)

    async def push_view(self) -> None:
        body = encoder.encode(self.view())
        for name in self.nodes:
            client = self.plain_client if name == self.plain else self.client
            async with client.request("POST", self.addr(name), "/int/ring", data=body) as resp:
                assert resp.status == 200, await resp.text()

    async def close(self) -> None:
        await super().close()
        await self.plain_client.close()


def test_a_member_without_tls_is_a_failed_node_for_the_others(tmp_path: Path, member: InternalTls) -> None:
    """s2 has no TLS: the coordinator's replica write to it fails at once, its breaker opens and the
    write is queued for repair, while W=2 is met by s1 and s3 and the client is answered; s2's own
    writes to the others fail the same way."""

    async def main() -> None:
        c = MixedCluster(tmp_path, ["s1", "s2", "s3"], member, plain="s2")
        try:
            for name in c.names:
                await c.start(name)
            await c.push_view()
            rpc = RpcClient(SECRET, tls=member.client_context())
            try:
                reply, _ = await asyncio.wait_for(rpc.call(c.addr("s1"), wire.PUT, _req(
                    b"mixed", coordinate=True, put=PutHeader()), b"data", timeout=10), FAST)  # fmt: skip
                assert reply.status == 200 and reply.written is not None
            finally:
                await rpc.close()
            s1 = c.nodes["s1"]
            await eventually(lambda: s1.queue.depths().get("s2", 0) >= 1)
            assert s1.queue.depths().get("s3", 0) == 0
            assert s1.coordinator.health.stats()["s2"]["failures"] >= 1
            assert c.local("s3", b"mixed") is not None and c.local("s2", b"mixed") is None
            # the other way round: s2 coordinating reaches neither TLS replica, W=2 is not met (503)
            plain = RpcClient(SECRET)
            try:
                reply, _ = await asyncio.wait_for(plain.call(c.addr("s2"), wire.PUT, _req(
                    b"mixed2", coordinate=True, put=PutHeader()), b"data", timeout=10), FAST)  # fmt: skip
                assert reply.status == 503, reply
            finally:
                await plain.close()
            await eventually(lambda: {"s1", "s3"} <= set(c.nodes["s2"].queue.depths()))
        finally:
            await c.close()

    asyncio.run(main())


def test_incomplete_or_readable_tls_files_are_refused(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key, ca_file = member_files(ca, tmp_path, "m")
    assert InternalTls.from_options(None, None, None) is None
    with pytest.raises(TlsConfigError, match="missing internal_tls_ca"):
        InternalTls.from_options(cert, key, None)
    with pytest.raises(TlsConfigError, match="no such file"):
        InternalTls.from_options(cert, tmp_path / "none.key", ca_file)
    os.chmod(key, 0o640)
    with pytest.raises(TlsConfigError, match="chmod 600"):
        InternalTls.from_options(cert, key, ca_file)
    os.chmod(key, 0o600)
    with pytest.raises(TlsConfigError):  # a key that is not the certificate's
        InternalTls.from_options(cert, member_files(ca, tmp_path / "other", "o")[1], ca_file)
    assert InternalTls.from_options(cert, key, ca_file) is not None
