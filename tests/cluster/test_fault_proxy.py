"""The fault-injection proxy itself, in front of a plain echo server: pass, delay, drop, black hole
and heal behave as the cluster tests rely on."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.cluster.faults.proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = TcpProxy(("127.0.0.1", server.server_address[1]))
    yield p
    p.close()
    server.shutdown()
    server.server_close()


def _echo(proxy: TcpProxy, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            piece = s.recv(65536)
            if not piece:
                break
            got += piece
        return got


def test_pass_and_delay(proxy: TcpProxy) -> None:
    assert _echo(proxy, b"hello") == b"hello"
    proxy.set_delay(0.3)
    start = time.monotonic()
    assert _echo(proxy, b"slow") == b"slow"
    assert time.monotonic() - start >= 0.6  # once each way
    proxy.heal()
    assert _echo(proxy, b"fast") == b"fast"


def test_drop_closes_connections(proxy: TcpProxy) -> None:
    proxy.drop()
    try:
        got = _echo(proxy, b"x")
    except OSError:  # reset
        got = b""
    assert got == b""  # closed (or reset) without an answer
    proxy.heal()
    assert _echo(proxy, b"back") == b"back"


def test_black_hole_holds_bytes_and_heal_delivers_them(proxy: TcpProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        proxy.blackhole()
        s.sendall(b"held")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)  # accepted, and nothing comes back
        proxy.heal()
        s.settimeout(5)
        assert s.recv(10) == b"held"
