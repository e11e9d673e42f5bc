"""Large reads from a replica on this host: the node passes the container file's descriptor
(:mod:`leofs.internal.local_data`) and the gateway sends the chunk with sendfile, as the embedded
server does, instead of the bytes coming through the node's TCP socket and this process.

Whether a node is on this host is found out by trying its abstract socket: one that does not
answer (another host, another network namespace, another user, a node that died) is not tried
again for :data:`RETRY_AFTER` seconds, and its reads take the binary protocol. Every failure of
this path falls back to that one: a GET never fails because the local path did.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

import msgspec
from prometheus_client.core import Metric

from leofs import metrics
from leofs.internal import local_data as ld
from leofs.internal import wire
from leofs.internal.health import CallTimeouts
from leofs.storage.model import Entry

log = logging.getLogger("leofs.gateway.local_data")

#: a node whose socket did not answer is read over TCP for this long before it is tried again
RETRY_AFTER = 30.0
IDLE_PER_NODE = 8  # authenticated connections kept per node

#: chunks (and records) sent from a local replica's descriptor, in this process
counts = {"reads": 0, "fallbacks": 0}


def _produce() -> Iterable[Metric]:
    yield metrics.counter("leofs_gateway_local_reads", "Object data sent with sendfile from a storage node's "
                          "container file on this host (local data socket)", counts["reads"])
    yield metrics.counter("leofs_gateway_local_read_fallbacks", "Reads that tried a local storage node's data "
                          "socket and took the binary protocol instead", counts["fallbacks"])


metrics.registry.register(metrics.FunctionCollector(_produce))


class Elsewhere(Exception):
    """The local node answered, but does not hold that version (404/409): the usual path decides."""


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def call(self, entry: Entry) -> tuple[ld.Answer, int | None]:
        await ld.send(self.sock, ld.encode(ld.OpenData(entry.ns, entry.key, entry.clock)))
        message, fds = await ld.receive(self.sock, max_fds=1)
        try:
            answer = ld.answer_decoder.decode(message)
        except msgspec.DecodeError:
            ld.close_all(fds)
            raise ConnectionError("garbage on the local data socket") from None
        if answer.status == 200 and len(fds) == 1:
            return answer, fds[0]
        ld.close_all(fds)
        if answer.status == 200:
            raise ConnectionError("a local data answer without its descriptor")
        return answer, None

    def close(self) -> None:
        self.sock.close()


class LocalReads:
    """Connections to the local data sockets of the storage nodes on this host."""

    def __init__(self, secret: str, timeouts: CallTimeouts | None = None, *, retry_after: float = RETRY_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.secret = secret.encode()
        self.timeouts = timeouts or CallTimeouts()
        self.retry_after = retry_after
        self.clock = clock
        self._not_local: dict[str, float] = {}  # address -> not tried again before this time
        self._idle: dict[str, list[_Connection]] = {}
        self._local: set[str] = set()  # addresses whose socket answered last time

    def maybe_local(self, address: str) -> bool:
        """False while ``address``'s socket is known not to answer."""
        until = self._not_local.get(address)
        return until is None or self.clock() >= until

    async def open(self, address: str, entry: Entry) -> tuple[BinaryIO, int, int] | None:
        """(read-only file, data offset, size) of ``entry``'s data from the node at ``address``,
        when it runs on this host; None when it does not (or its socket failed). Raises
        :class:`Elsewhere` when the node answered that it does not hold that version. The caller
        closes the file, and reads it only with explicit offsets (sendfile, pread)."""
        if not self.maybe_local(address):
            return None
        pool = self._idle.setdefault(address, [])
        for _ in range(2):
            pooled = bool(pool)
            try:
                async with asyncio.timeout(self.timeouts.connect + self.timeouts.op):
                    conn = pool.pop() if pooled else await self._connect(address)
                    try:
                        answer, fd = await conn.call(entry)
                    except BaseException:  # also cancelled: its answer may still come, unread
                        conn.close()
                        raise
            except (OSError, msgspec.DecodeError, wire.ProtocolError) as exc:
                if pooled and not isinstance(exc, TimeoutError):
                    continue  # an idle connection to a node that restarted: once more, on a new one
                self._not_local[address] = self.clock() + self.retry_after
                if address in self._local:  # it was local: this read falls back
                    self._local.discard(address)
                    counts["fallbacks"] += 1
                log.debug("no local data socket for %s (%s): reads go over TCP", address, exc)
                return None
            self._not_local.pop(address, None)
            self._local.add(address)
            if len(pool) < IDLE_PER_NODE:
                pool.append(conn)
            else:
                conn.close()
            if fd is None:
                counts["fallbacks"] += 1
                raise Elsewhere(f"{answer.status} {answer.message}")
            if answer.size != entry.size:
                os.close(fd)
                counts["fallbacks"] += 1
                raise Elsewhere(f"size {answer.size}, expected {entry.size}")
            counts["reads"] += 1
            return os.fdopen(fd, "rb", buffering=0), answer.offset, answer.size
        return None

    async def _connect(self, address: str) -> _Connection:
        sock = ld.seqpacket()
        try:
            await asyncio.get_running_loop().sock_connect(sock, ld.socket_name(address))
            message, _ = await ld.receive(sock)
            try:
                hello = wire.hello_decoder.decode(message)
            except msgspec.DecodeError:
                refusal = ld.answer_decoder.decode(message)
                raise ConnectionRefusedError(f"{refusal.status} {refusal.message}") from None
            if hello.version != ld.VERSION:
                raise wire.ProtocolError(f"local data socket version {hello.version}, not {ld.VERSION}")
            nonce = os.urandom(wire.NONCE_BYTES)
            await ld.send(sock, wire.encode(wire.Auth(nonce, wire.client_proof(self.secret, hello.nonce, nonce))))
            message, _ = await ld.receive(sock)
            answer = ld.answer_decoder.decode(message)
            if answer.status != 200:
                raise ConnectionRefusedError(f"{answer.status} {answer.message}")
            # the node proves the secret too: a process squatting the name gets no requests
            if not hmac.compare_digest(answer.proof, wire.server_proof(self.secret, hello.nonce, nonce)):
                raise ConnectionRefusedError("the local data socket did not prove the cluster secret")
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def close(self) -> None:
        """Close the idle connections."""
        for pool in self._idle.values():
            for conn in pool:
                conn.close()
        self._idle.clear()
