"""The write link: how processes that only read a store send it their writes.

The embedded server runs its gateway in several worker processes that share the S3 port (so that
every core answers requests). They all read the data directory directly (the SQLite index in WAL
mode, the container logs with pread and sendfile), but only one process may append: the one that
owns the store's group-commit writer. The others send each put and delete to it over a Unix socket
and get back the same :class:`PutResult` a local call returns, once the write is durable. One
connection per worker carries any number of concurrent requests (each has an id), so the writer's
batches fill from all workers at once.

Frame: 8 bytes (big-endian u32 header length, u32 data length), a msgpack header, the raw data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

import msgspec

from leofs.storage.model import DiskFull, PutResult
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.link")

_FRAME = struct.Struct(">II")


class WriteRequest(msgspec.Struct, array_like=True):
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


class WriteReply(msgspec.Struct, array_like=True):
    id: int
    result: PutResult | None = None
    error: str = ""  # "" | "disk_full" | "invalid" | "failed"
    message: str = ""


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(WriteRequest).decode
_decode_reply = msgspec.msgpack.Decoder(WriteReply).decode


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    hlen, dlen = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    head = await reader.readexactly(hlen)
    return head, (await reader.readexactly(dlen) if dlen else b"")


class WriteService:
    """Accepts write links on a Unix socket and applies their writes to the local store."""

    def __init__(self, store: ObjectStore, path: Path) -> None:
        self.store = store
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop accepting, finish and answer the writes already received, then hang up."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._links):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        try:
            while True:
                head, data = await _read_frame(reader)
                task = asyncio.create_task(self._apply(_decode_request(head), data, writer))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away; writes it sent still complete
        except msgspec.DecodeError:
            log.error("malformed frame on the write link; closing it")
        finally:
            self._links.discard(writer)
            writer.close()

    async def _apply(self, req: WriteRequest, data: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            if req.tombstone:
                result = await self.store.delete(req.ns, req.key, clock=req.clock, timestamp=req.timestamp)
            else:
                result = await self.store.put(
                    req.ns, req.key, data, meta=req.meta, clock=req.clock, timestamp=req.timestamp,
                    cindex=req.cindex, cnumber=req.cnumber, csize=req.csize, md5=req.md5,
                )  # fmt: skip
            reply = WriteReply(req.id, result)
        except DiskFull as exc:
            reply = WriteReply(req.id, error="disk_full", message=str(exc))
        except ValueError as exc:
            reply = WriteReply(req.id, error="invalid", message=str(exc))
        except Exception as exc:  # reported to the worker, which answers 500
            log.exception("write from a worker failed")
            reply = WriteReply(req.id, error="failed", message=f"{type(exc).__name__}: {exc}")
        if not writer.is_closing():
            body = _encode(reply)
            writer.write(_FRAME.pack(len(body), 0) + body)


class LinkLost(ConnectionError):
    """The process that owns the writer is gone."""


class WriteLink:
    """The worker's end: puts and deletes sent to the writer's process, answered when durable."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_lost: Callable[[], None] | None) -> None:  # fmt: skip
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[PutResult]] = {}
        self._on_lost = on_lost
        self._lost = False
        self._receiver = asyncio.ensure_future(self._receive())

    @classmethod
    async def connect(cls, path: Path, on_lost: Callable[[], None] | None = None) -> WriteLink:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
        return cls(reader, writer, on_lost)

    async def close(self) -> None:
        self._lost = True
        self._receiver.cancel()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._fail_pending()

    async def submit(self, request: WriteRequest, data: bytes | memoryview = b"") -> PutResult:
        """Send one write; returns its result once the owner has made it durable."""
        if self._lost:
            raise LinkLost("the storage process is gone")
        request.id = next(self._ids)
        fut: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = fut
        head = _encode(request)
        try:
            self._writer.writelines([_FRAME.pack(len(head), len(data)), head, data] if data else
                                    [_FRAME.pack(len(head), 0), head])  # fmt: skip
            await self._writer.drain()
        except ConnectionError as exc:
            self._pending.pop(request.id, None)
            raise LinkLost(str(exc)) from None
        return await fut

    async def _receive(self) -> None:
        try:
            while True:
                head, _ = await _read_frame(self._reader)
                reply = _decode_reply(head)
                fut = self._pending.pop(reply.id, None)
                if fut is None or fut.done():
                    continue
                if reply.result is not None:
                    fut.set_result(reply.result)
                elif reply.error == "disk_full":
                    fut.set_exception(DiskFull(reply.message))
                elif reply.error == "invalid":
                    fut.set_exception(ValueError(reply.message))
                else:
                    fut.set_exception(RuntimeError(f"write failed in the storage process: {reply.message}"))
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError):
            pass
        self._lost = True
        self._fail_pending()
        if self._on_lost is not None:
            self._on_lost()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(LinkLost("the storage process is gone"))
