"""The write link: how processes that only read a store send it their writes.

The embedded server runs its gateway in several worker processes that share the S3 port (so that
every core answers requests). They all read the data directory directly (the SQLite index in WAL
mode, the container logs with pread and sendfile), but only one process may append: the one that
owns the store's group-commit writer. The others send each put and delete to it over a Unix socket
and get back the same :class:`PutResult` a local call returns, once the write is durable. One
connection per worker carries any number of concurrent requests (each has an id), so the writer's
batches fill from all workers at once.

Frame: 8 bytes (big-endian u32 header length, u32 data length), a msgpack header, the raw data.
Chunk data (megabytes) is neither copied into a send buffer nor through a stream buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import msgspec

from leofs.storage.model import DiskFull, PutResult, WriteConflict
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.link")

_FRAME = struct.Struct(">II")
_RECV_SIZE = 256 * 1024
_INLINE_SEND = 64 * 1024  # data up to this size goes out in one send with its header


class WriteRequest(msgspec.Struct, array_like=True, tag="w"):
    id: int
    tombstone: bool
    ns: int
    key: bytes
    meta: bytes = b""
    clock: int | None = None
    timestamp: int | None = None
    cindex: int = 0
    cnumber: int = 0
    csize: int = 0
    md5: bytes | None = None
    expect: int | None = None  # compare-and-set, evaluated by the owner's writer


class MetricsRequest(msgspec.Struct, array_like=True, tag="m"):
    """Asks for the owner's storage metrics: a worker's scrape shows them too."""

    id: int


class WriteReply(msgspec.Struct, array_like=True):
    id: int
    result: PutResult | None = None
    error: str = ""  # "" | "disk_full" | "invalid" | "conflict" | "failed"
    message: str = ""  # the error's text, or a metrics query's answer


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(WriteRequest | MetricsRequest).decode
_decode_reply = msgspec.msgpack.Decoder(WriteReply).decode


class WriteService:
    """Accepts write links on a Unix socket and applies their writes to the local store."""

    def __init__(self, store: ObjectStore, path: Path, metrics: Callable[[], str] | None = None) -> None:
        self.store = store
        self.path = path
        self.metrics = metrics  # the owner's storage metrics, for MetricsRequest
        self._server: asyncio.AbstractServer | None = None
        self._inflight: set[asyncio.Future[PutResult]] = set()
        self._links: set[_ServiceProtocol] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _ServiceProtocol(self), path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop accepting, finish and answer the writes already received, then hang up."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for link in list(self._links):
            link.close()

    def _start(self, req: WriteRequest | MetricsRequest, data: bytes | bytearray, link: _ServiceProtocol) -> None:
        if isinstance(req, MetricsRequest):
            link.reply(WriteReply(req.id, message=self.metrics() if self.metrics is not None else ""))
            return
        try:  # straight into the writer's queue; answered from the future's callback (no task)
            fut = self.store.submit(
                req.ns, req.key, memoryview(data), tombstone=req.tombstone, meta=req.meta, clock=req.clock,
                timestamp=req.timestamp, cindex=req.cindex, cnumber=req.cnumber, csize=req.csize, md5=req.md5,
                expect=req.expect,
            )  # fmt: skip
        except ValueError as exc:
            link.reply(WriteReply(req.id, error="invalid", message=str(exc)))
            return
        except Exception as exc:  # e.g. the store is closing: reported to the worker, which answers 500
            link.reply(WriteReply(req.id, error="failed", message=f"{type(exc).__name__}: {exc}"))
            return
        self._inflight.add(fut)
        fut.add_done_callback(lambda f: self._done(req.id, f, link))

    def _done(self, rid: int, fut: asyncio.Future[PutResult], link: _ServiceProtocol) -> None:
        self._inflight.discard(fut)
        exc = fut.exception() if not fut.cancelled() else RuntimeError("cancelled")
        if exc is None:
            link.reply(WriteReply(rid, fut.result()))
        elif isinstance(exc, DiskFull):
            link.reply(WriteReply(rid, error="disk_full", message=str(exc)))
        elif isinstance(exc, WriteConflict):
            link.reply(WriteReply(rid, error="conflict", message=str(exc)))
        elif isinstance(exc, ValueError):
            link.reply(WriteReply(rid, error="invalid", message=str(exc)))
        else:
            log.error("write from a worker failed: %s: %s", type(exc).__name__, exc)
            link.reply(WriteReply(rid, error="failed", message=f"{type(exc).__name__}: {exc}"))


class _ServiceProtocol(asyncio.BufferedProtocol):
    """The owner's end of one link. A frame's data is received straight into the buffer that is
    then stored (no copy through a stream buffer: chunks are megabytes)."""

    def __init__(self, service: WriteService) -> None:
        self.service = service
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(_RECV_SIZE)  # frame prefixes (and small data)
        self._len = 0
        self._req: WriteRequest | MetricsRequest | None = None  # the frame whose data is arriving
        self._data = bytearray()
        self._got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.service._links.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service._links.discard(self)  # writes already received still complete

    def reply(self, reply: WriteReply) -> None:
        if self.transport is not None and not self.transport.is_closing():
            body = _encode(reply)
            self.transport.write(_FRAME.pack(len(body), 0) + body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._req is not None:
            return memoryview(self._data)[self._got :]
        if len(self._buf) - self._len < _RECV_SIZE // 2:
            self._buf.extend(bytes(_RECV_SIZE))  # a frame prefix longer than the buffer
        return memoryview(self._buf)[self._len :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._req is not None:
            self._got += nbytes
            if self._got == len(self._data):
                req, data = self._req, self._data
                self._req, self._data = None, bytearray()
                self.service._start(req, data, self)
            return
        self._len += nbytes
        try:
            self._parse()
        except (msgspec.DecodeError, struct.error):
            log.error("malformed frame on the write link; closing it")
            self.close()

    def _parse(self) -> None:
        buf, pos, end = self._buf, 0, self._len
        while end - pos >= _FRAME.size:
            hlen, dlen = _FRAME.unpack_from(buf, pos)
            if end - pos - _FRAME.size < hlen:
                break
            start = pos + _FRAME.size
            req = _decode_request(memoryview(buf)[start : start + hlen])
            pos = start + hlen
            have = min(dlen, end - pos)
            if have == dlen:
                self.service._start(req, bytes(buf[pos : pos + dlen]), self)
                pos += dlen
                continue
            self._req, self._data, self._got = req, bytearray(dlen), have  # the rest lands in place
            self._data[:have] = buf[pos:end]
            pos = end
            break
        rest = end - pos
        if rest and pos:
            buf[:rest] = buf[pos:end]  # same-size move: the buffer may be exported to the transport
        self._len = rest


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class LinkLost(ConnectionError):
    """The process that owns the writer is gone."""


class WriteLink:
    """The worker's end: puts and deletes sent to the writer's process, answered when durable.

    A small frame goes to the kernel in one ``send`` when nothing is queued. Others go out with
    ``sock_sendall`` from the caller's buffer (no copy into a transport buffer), one at a time."""

    def __init__(self, sock: socket.socket, on_lost: Callable[[], None] | None) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._send_lock = asyncio.Lock()
        self._backlog = 0  # frames waiting for or in the middle of a send; later frames queue behind
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[PutResult | str]] = {}
        self._on_lost = on_lost
        self._lost = False
        self._receiver = asyncio.ensure_future(self._receive())

    @classmethod
    async def connect(cls, path: Path, on_lost: Callable[[], None] | None = None) -> WriteLink:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, str(path))
        except BaseException:
            sock.close()
            raise
        return cls(sock, on_lost)

    async def close(self) -> None:
        self._lost = True
        self._receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._receiver
        self._sock.close()
        self._fail_pending()

    async def submit(self, request: WriteRequest, data: bytes | memoryview = b"") -> PutResult:
        """Send one write; returns its result once the owner has made it durable."""
        result = await self._ask(request, data)
        assert isinstance(result, PutResult)
        return result

    async def query_metrics(self) -> str:
        """The owner's storage metrics (Prometheus text), for a scrape of this worker."""
        result = await self._ask(MetricsRequest(0))
        assert isinstance(result, str)
        return result

    async def _ask(self, request: WriteRequest | MetricsRequest, data: bytes | memoryview = b"") -> PutResult | str:
        if self._lost:
            raise LinkLost("the storage process is gone")
        request.id = next(self._ids)
        fut: asyncio.Future[PutResult | str] = self._loop.create_future()
        self._pending[request.id] = fut
        head = _encode(request)
        prefix = _FRAME.pack(len(head), len(data)) + head
        if not self._backlog and len(data) <= _INLINE_SEND:
            # Nothing queued: try to hand the whole frame to the kernel now (the usual case for
            # small records: no task, no lock).
            frame = prefix + bytes(data)
            try:
                sent = self._sock.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._pending.pop(request.id, None)
                raise LinkLost(str(exc)) from None
            if sent == len(frame):
                return await fut
            prefix, data = frame[sent:], b""
        # A frame, once begun, must go out whole or the stream is corrupt: send it from its own task,
        # which a cancelled caller (an aborted upload) does not interrupt. Frames keep their order.
        self._backlog += 1
        send = asyncio.ensure_future(self._send(prefix, data))
        send.add_done_callback(_consume)  # its error is the caller's, unless the caller went away
        try:
            await asyncio.shield(send)
        except OSError as exc:
            self._pending.pop(request.id, None)
            raise LinkLost(str(exc)) from None
        return await fut

    async def _send(self, prefix: bytes, data: bytes | memoryview) -> None:
        try:
            async with self._send_lock:
                if len(data) <= _INLINE_SEND:
                    await self._loop.sock_sendall(self._sock, prefix + bytes(data))
                else:
                    await self._loop.sock_sendall(self._sock, prefix)
                    await self._loop.sock_sendall(self._sock, data)
        finally:
            self._backlog -= 1

    async def _receive(self) -> None:
        buf = bytearray()
        try:
            while True:
                more = await self._loop.sock_recv(self._sock, _RECV_SIZE)
                if not more:
                    break
                buf += more
                pos = 0
                while len(buf) - pos >= _FRAME.size:
                    hlen, _ = _FRAME.unpack_from(buf, pos)
                    if len(buf) - pos - _FRAME.size < hlen:
                        break
                    self._answer(_decode_reply(memoryview(buf)[pos + _FRAME.size : pos + _FRAME.size + hlen]))
                    pos += _FRAME.size + hlen
                del buf[:pos]
        except (OSError, msgspec.DecodeError):
            pass
        self._lost = True
        self._fail_pending()
        if self._on_lost is not None:
            self._on_lost()

    def _answer(self, reply: WriteReply) -> None:
        fut = self._pending.pop(reply.id, None)
        if fut is None or fut.done():
            return
        if reply.result is not None:
            fut.set_result(reply.result)
        elif reply.error == "":
            fut.set_result(reply.message)
        elif reply.error == "disk_full":
            fut.set_exception(DiskFull(reply.message))
        elif reply.error == "invalid":
            fut.set_exception(ValueError(reply.message))
        elif reply.error == "conflict":
            fut.set_exception(WriteConflict(reply.message))
        else:
            fut.set_exception(RuntimeError(f"write failed in the storage process: {reply.message}"))

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(LinkLost("the storage process is gone"))
