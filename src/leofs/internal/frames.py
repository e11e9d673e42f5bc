"""A connection that speaks :mod:`leofs.internal.wire` frames: both ends of the binary protocol.

Receiving: frame prefixes land in a reusable buffer; a frame's data that is not all there yet is
received straight into its own buffer of the announced size (no copy through a stream buffer:
chunks are megabytes). Limits are checked on the fixed header, before anything is allocated.

Sending: frames go out whole and in order (one sender at a time); the small frames of one turn of
the event loop go out together in one write at its end (a large frame flushes them first).
Large data is written in pieces, each after the transport has drained below its high-water mark,
so a peer that stops reading holds the sender (until its call's timeout), not an unbounded
buffer. A frame interrupted half-way (its caller timed out) leaves the stream unusable: the
connection is aborted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO

import msgspec

from leofs.internal.tls import is_tls, pread_pieces
from leofs.internal.wire import FRAME, ProtocolError, frame_prefix, parse_frame_header

log = logging.getLogger("leofs.internal.frames")

_RECV_SIZE = 256 * 1024
INLINE_SEND = 64 * 1024  # data up to this size goes out in one write with its prefix
SEND_PIECE = 256 * 1024
HIGH_WATER = 256 * 1024
REUSE_MAX = 16 * 1024 * 1024  # larger frames (rare: not a chunk) get a buffer of their own


class FrameConnection(asyncio.BufferedProtocol):
    """Base of the client's and the server's connection; subclasses handle :meth:`frame_received`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(_RECV_SIZE)
        self._len = 0
        self._partial: tuple[int, int, bytes] | None = None  # (type, id, header) whose data is arriving
        self._data = bytearray()
        self._want = 0
        self._got = 0
        #: deliver data as ``bytes`` received through one reused buffer (a client: its callers keep
        #: immutable bytes, and a fresh zero-filled buffer per chunk costs more than the one copy);
        #: else as a bytearray of its own, received in place (a server hands it to the store)
        self.reuse = False
        self._reused = bytearray()
        self._send_lock = asyncio.Lock()
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self.writing: int | None = None  # the id of a frame partly written: cutting it corrupts the stream
        self.closed = False
        #: small frames sent in this turn of the event loop, written together at its end (flush)
        self._out: list[bytes] = []

    # -- receiving ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)  # the waiter sees ``closed``

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._partial is not None:
            return memoryview(self._data)[self._got : self._want]
        if len(self._buf) - self._len < _RECV_SIZE // 2:
            self._buf.extend(bytes(_RECV_SIZE))
        return memoryview(self._buf)[self._len :]

    def buffer_updated(self, nbytes: int) -> None:
        try:
            if self._partial is not None:
                self._got += nbytes
                if self._got == self._want:
                    (kind, rid, header), data = self._partial, self._data
                    self._partial, self._data = None, bytearray()
                    self.frame_received(kind, rid, header, bytes(memoryview(data)[: self._want]) if self.reuse
                                        else data)  # fmt: skip
                return
            self._len += nbytes
            self._parse()
        except (ProtocolError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.protocol_error(str(exc))

    def feed(self, data: bytes) -> None:
        """Bytes that arrived before this protocol took the connection over (the node's sniffer)."""
        view = memoryview(data)
        while view and not self.closed:
            buf = self.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            self.buffer_updated(n)

    def _parse(self) -> None:
        buf, pos = self._buf, 0
        while not self.closed:
            end = self._len
            used = self.preface(memoryview(buf)[pos:end])
            if used < 0:
                break
            if used:
                pos += used
                continue
            if end - pos < FRAME.size:
                break
            kind, rid, hlen, dlen = parse_frame_header(buf, pos)
            self.check_frame(kind, hlen, dlen)
            if end - pos - FRAME.size < hlen:
                break
            start = pos + FRAME.size
            header = bytes(buf[start : start + hlen])
            pos = start + hlen
            have = min(dlen, end - pos)
            if have == dlen:
                data = bytes(buf[pos : pos + dlen]) if self.reuse else bytearray(buf[pos : pos + dlen])
                pos += dlen
                self.frame_received(kind, rid, header, data)
                continue
            if self.reuse and dlen <= REUSE_MAX:
                if len(self._reused) < dlen:
                    self._reused = bytearray(dlen)
                self._data = self._reused
            else:
                self._data = bytearray(dlen)
            self._partial, self._want, self._got = (kind, rid, header), dlen, have
            self._data[:have] = buf[pos:end]
            pos = end
            break
        rest = self._len - pos
        if rest and pos:
            buf[:rest] = buf[pos : self._len]  # same-size move: the buffer may be exported to the transport
        self._len = rest

    def preface(self, pending: memoryview) -> int:
        """Bytes consumed before frames (the server's preface): 0 when none are (any longer)
        expected, -1 to wait for more bytes (or after refusing the connection)."""
        return 0

    def check_frame(self, kind: int, hlen: int, dlen: int) -> None:
        """ProtocolError for a frame not acceptable now (checked before its bytes are buffered)."""

    def frame_received(self, kind: int, rid: int, header: bytes, data: bytes | bytearray) -> None:
        raise NotImplementedError

    def protocol_error(self, message: str) -> None:
        log.warning("binary protocol error from %s: %s; closing the connection", self.peer(), message)
        self.abort()

    def peer(self) -> str:
        info = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(info[0]) if isinstance(info, tuple) and info else ""

    def abort(self) -> None:
        if self.writing is None:  # (never inside a frame cut half-way)
            self.flush()  # what was sent before the reason to abort still goes out (a HELLO, say)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- sending ------------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    async def _drain(self) -> None:
        while self._paused and not self.closed:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._resumed)
        if self.closed:
            raise ConnectionResetError("connection lost")

    def try_send(self, kind: int, rid: int, header: bytes, data: bytes | bytearray | memoryview = b"") -> bool:
        """Send a small frame now when nothing else is being sent; False when the caller must use
        :meth:`send`."""
        if self._send_lock.locked() or self._paused or len(data) > INLINE_SEND:
            return False
        if self.closed or self.transport is None:
            raise ConnectionResetError("connection lost")
        # Small frames of one loop turn leave in one write: each write to an idle peer wakes it,
        # which costs the sender more than the frame itself (a quarter of a gateway's CPU per HEAD
        # went to one write per frame).
        if not self._out:
            asyncio.get_running_loop().call_soon(self.flush)
        self._out.append(frame_prefix(kind, rid, header, len(data)) + data)
        return True

    def flush(self) -> None:
        """Write the small frames queued by :meth:`try_send` (before any frame :meth:`send` starts)."""
        out, self._out = self._out, []
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def send(self, kind: int, rid: int, header: bytes, data: bytes | bytearray | memoryview = b"",
                   file: tuple[IO[bytes], int, int] | None = None) -> None:  # fmt: skip
        """Send one frame whole; its data from ``data`` or, with ``file`` (fobj, offset, count),
        from a file: by sendfile, or read with pread on a TLS connection."""
        size = file[2] if file is not None else len(data)
        prefix = frame_prefix(kind, rid, header, size)
        async with self._send_lock:
            await self._drain()
            transport = self.transport
            if self.closed or transport is None:
                raise ConnectionResetError("connection lost")
            self.flush()  # frames queued before this one go first, never inside it
            if file is None and size <= INLINE_SEND:
                transport.write(prefix + data)
                return
            done = False
            self.writing = rid
            try:
                transport.write(prefix)
                if file is not None and is_tls(transport):  # no sendfile through TLS: pread pieces
                    fobj, offset, count = file
                    async for piece in pread_pieces(fobj.fileno(), offset, count):
                        await self._drain()
                        transport.write(piece)
                elif file is not None:
                    fobj, offset, count = file
                    sent = await asyncio.get_running_loop().sendfile(transport, fobj, offset, count)
                    if sent != count:
                        raise ConnectionResetError(f"sent {sent} of {count} bytes of a file (truncated?)")
                else:
                    view = memoryview(data)
                    for i in range(0, size, SEND_PIECE):
                        await self._drain()
                        transport.write(view[i : i + SEND_PIECE])
                done = True
            finally:
                self.writing = None
                if not done:  # half a frame is on the wire: nothing after it can be understood
                    self.abort()
