"""The storage node's one listening address, serving two protocols.

Each new connection is sniffed on its first byte: a NUL starts the binary protocol's preface
(:data:`leofs.internal.wire.PREFACE`; an HTTP request never starts with a NUL), anything else is
HTTP and goes to the node's aiohttp server. With internal TLS the port is TLS only, and the
sniffing happens on the decrypted stream. The connection is then handed over whole (the bytes
already read are replayed), so both protocols share the address, the membership entry and any
proxy in between.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import web

from leofs.internal.tls import HANDSHAKE_TIMEOUT
from leofs.node.rpc_api import RpcServer

#: a connection that sends nothing for this long is closed before either protocol takes it
FIRST_BYTE_TIMEOUT = 30.0


class _Sniffer(asyncio.Protocol):
    def __init__(self, http: Callable[[], asyncio.Protocol], rpc: RpcServer) -> None:
        self.http = http
        self.rpc = rpc
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._silent = asyncio.get_running_loop().call_later(FIRST_BYTE_TIMEOUT, self._close_silent)

    def _close_silent(self) -> None:
        if self.transport is not None:  # nothing arrived: neither protocol has it
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not data:
            return
        self.transport = None  # the connection belongs to the chosen protocol from now on
        self._silent.cancel()
        if data[0] == 0:
            conn = self.rpc.connection()
            transport.set_protocol(conn)
            conn.connection_made(transport)
            conn.feed(data)
        else:
            handler = self.http()
            transport.set_protocol(handler)
            handler.connection_made(transport)
            handler.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._silent.cancel()


async def start_listener(runner: web.AppRunner, rpc: RpcServer, host: str, port: int,
                         tls: ssl.SSLContext | None = None) -> asyncio.Server:  # fmt: skip
    """Listen on ``host:port`` for both protocols (``runner`` set up; its server answers HTTP).
    With ``tls`` (a server context) every connection is TLS first, and the first byte is sniffed
    on the decrypted stream; a plaintext connection fails the handshake and is closed."""
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    if tls is None:
        return await loop.create_server(lambda: _Sniffer(server, rpc), host, port, backlog=1024)
    return await loop.create_server(lambda: _Sniffer(server, rpc), host, port, backlog=1024, ssl=tls,
                                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT)  # fmt: skip
