"""The client of the binary internal protocol: object calls to storage nodes on long-lived connections.

Per node address a small pool of connections (``size``), each authenticated once (HMAC challenge
with the cluster secret, :mod:`leofs.internal.wire`) and carrying any number of concurrent calls,
told apart by request id. Every call is bounded by its timeout, the frame's sending included. A
lost connection fails every call pending on it with :class:`RpcError` (a ConnectionError, so
breakers, retries on the next replica and repair tasks see what a failed HTTP call gives them);
the next call reopens it. A refused handshake (another protocol version, a wrong secret) raises
:class:`RpcRefused` and closes the connection.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import ssl

from leofs.internal.frames import FrameConnection
from leofs.internal.wire import (
    AUTH,
    AUTH_OK,
    HELLO,
    NONCE_BYTES,
    PREFACE,
    REFUSED,
    REPLY,
    VERSION,
    Auth,
    ProtocolError,
    Reply,
    Request,
    auth_ok_decoder,
    client_proof,
    encode,
    hello_decoder,
    reply_decoder,
    server_proof,
)

log = logging.getLogger("leofs.internal.rpc")

#: connections per node address: small calls share the first (their frames coalesce into fewer
#: sends and receives: measured cheaper than spreading them), calls carrying a large body (either
#: way) take the second, so a chunk in flight does not hold the small calls behind it
POOL_SIZE = 2
#: a call whose request or (expected) reply data is larger than this goes on the bulk connection
BULK = 64 * 1024

Answer = tuple[Reply, bytes]


class RpcError(ConnectionError):
    """The connection failed, was lost, or the peer broke the protocol."""


class RpcRefused(RpcError):
    """The node refused the connection's handshake (protocol version, cluster secret)."""


def _expire(fut: asyncio.Future[Answer]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("no answer from the storage node in time"))


def _consume(fut: asyncio.Future[_ClientConnection]) -> None:
    if not fut.cancelled():
        fut.exception()


class _ClientConnection(FrameConnection):
    def __init__(self, secret: bytes, address: str) -> None:
        super().__init__()
        self.secret = secret
        self.address = address
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[Answer]] = {}
        self._ids = itertools.count(1)
        self._nonce = os.urandom(NONCE_BYTES)
        self._server_nonce = b""
        self.reuse = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(PREFACE)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.ready.done():  # e.g. one end has internal TLS and the other has not, or another CA
            self._fail_waiters(RpcError(f"connection to {self.address} closed during the handshake" +
                                        (f": {exc}" if exc else " (internal TLS set on one end only?)")))
        self._fail_waiters(RpcError(f"connection to {self.address} lost" + (f": {exc}" if exc else "")))

    def protocol_error(self, message: str) -> None:
        self._fail(RpcError(f"{self.address} broke the binary protocol: {message}"))

    def _fail(self, error: RpcError) -> None:
        self._fail_waiters(error)
        self.abort()

    def _fail_waiters(self, error: RpcError) -> None:
        """The handshake's waiter and every pending call fail with ``error``."""
        if not self.ready.done():
            self.ready.set_exception(error)
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)

    def check_frame(self, kind: int, hlen: int, dlen: int) -> None:
        if not self.ready.done() and (kind not in (HELLO, AUTH_OK, REFUSED) or dlen or hlen > 4096):
            raise ProtocolError(f"frame type {kind} ({hlen}+{dlen} bytes) before the handshake")

    def frame_received(self, kind: int, rid: int, header: bytes, data: bytes | bytearray) -> None:
        if kind == REPLY:
            fut = self.pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result((reply_decoder.decode(header), bytes(data)))  # bytes already (reuse): no copy
            return
        if kind == HELLO and not self._server_nonce:
            hello = hello_decoder.decode(header)
            if hello.version != VERSION:
                self._fail(RpcRefused(f"{self.address} speaks binary protocol version {hello.version}, "
                                      f"this process {VERSION}"))  # fmt: skip
                return
            self._server_nonce = hello.nonce
            proof = client_proof(self.secret, hello.nonce, self._nonce)
            assert self.transport is not None
            self.try_send(AUTH, 0, encode(Auth(self._nonce, proof)))
            return
        if kind == AUTH_OK and self._server_nonce and not self.ready.done():
            ok = auth_ok_decoder.decode(header)
            if not hmac.compare_digest(ok.proof, server_proof(self.secret, self._server_nonce, self._nonce)):
                self._fail(RpcRefused(f"{self.address} could not prove it holds the cluster secret"))
                return
            self.ready.set_result(None)
            return
        if kind == REFUSED:
            reply = reply_decoder.decode(header)
            self._fail(RpcRefused(f"{self.address} refused the connection ({reply.status}): {reply.message}"))
            return
        self.protocol_error(f"unexpected frame type {kind}")

    async def call(self, kind: int, request: Request, data: bytes | bytearray | memoryview,
                   timeout: float | None) -> Answer:  # fmt: skip
        rid = next(self._ids) % 0xFFFFFFFF + 1  # u32 on the wire, never 0: wraps on a long-lived connection
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Answer] = loop.create_future()
        self.pending[rid] = fut
        timer = loop.call_later(timeout, _expire, fut) if timeout is not None else None
        try:
            header = encode(request)
            if not self.try_send(kind, rid, header, data):
                send = asyncio.ensure_future(self.send(kind, rid, header, data))
                try:
                    await asyncio.wait((send, fut), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not send.done():  # timed out (or cancelled)
                        if self.writing == rid:  # half our frame is on the wire: the connection is unusable
                            self.abort()
                        send.cancel()
                if send.done() and not send.cancelled() and send.exception() is not None and not fut.done():
                    raise RpcError(f"sending to {self.address} failed: {send.exception()}")
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            self.pending.pop(rid, None)


class RpcClient:
    """Object calls over the binary protocol; one pool of connections per node address."""

    def __init__(self, secret: str, *, size: int = POOL_SIZE, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a client context (:meth:`leofs.internal.tls.InternalTls.client_context`) to
        connect over TLS, each node's certificate verified for the host of its address."""
        self.secret = secret.encode()
        self.size = size
        self.tls = tls
        self._pools: dict[str, list[asyncio.Future[_ClientConnection] | None]] = {}

    async def call(self, address: str, kind: int, request: Request, data: bytes | bytearray | memoryview = b"", *,
                   timeout: float | None, connect_timeout: float = 1.0, reply_size: int = 0) -> Answer:  # fmt: skip
        """Send one request to the node at ``address``; its reply and data. RpcError/TimeoutError
        when the node cannot be reached or does not answer within ``timeout`` seconds.
        ``reply_size``: the reply data expected (a read), to choose the connection."""
        bulk = self.size > 1 and (len(data) > BULK or reply_size > BULK)
        conn = await self._connection(address, connect_timeout, 1 if bulk else 0)
        return await conn.call(kind, request, data, timeout)

    async def _connection(self, address: str, connect_timeout: float, i: int = 0) -> _ClientConnection:
        slots = self._pools.get(address)
        if slots is None:
            slots = self._pools[address] = [None] * self.size
        slot = slots[i]
        if slot is not None and slot.done() and (slot.exception() is not None or slot.result().closed):
            slot = None
        if slot is None:
            slot = slots[i] = asyncio.ensure_future(self._open(address, connect_timeout))
            slot.add_done_callback(_consume)  # its error reaches the callers waiting (or nobody)
        try:
            return await asyncio.shield(slot)
        except BaseException:
            if slot.done() and slots[i] is slot:
                slots[i] = None  # the next call tries again
            raise

    async def _open(self, address: str, connect_timeout: float) -> _ClientConnection:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        conn: _ClientConnection | None = None

        def make() -> _ClientConnection:
            nonlocal conn
            conn = _ClientConnection(self.secret, address)
            return conn

        host = host.strip("[]")
        try:
            async with asyncio.timeout(connect_timeout):
                if self.tls is None:
                    await loop.create_connection(make, host, int(port))
                else:
                    await loop.create_connection(make, host, int(port), ssl=self.tls, server_hostname=host,
                                                 ssl_handshake_timeout=connect_timeout)  # fmt: skip
                assert conn is not None
                await conn.ready
        except TimeoutError:
            if conn is not None:
                conn.abort()
            raise TimeoutError(f"connecting to {address} timed out") from None
        except OSError as exc:
            if conn is not None:
                conn.abort()
            if isinstance(exc, ConnectionError):
                raise
            if isinstance(exc, ssl.SSLError):
                raise RpcError(f"TLS handshake with {address} failed (internal TLS must be set alike on every "
                               f"member, with certificates of one CA): {exc}") from exc  # fmt: skip
            raise RpcError(f"cannot connect to {address}: {exc}") from exc
        return conn

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for slots in pools.values():
            for slot in slots:
                if slot is None:
                    continue
                if not slot.done():
                    slot.cancel()
                    continue
                if slot.exception() is None:
                    slot.result().abort()
