"""The storage node's end of the binary internal protocol (docs/internal-api.md, "Binary protocol").

The object calls of :mod:`leofs.node.object_calls` (the HTTP API's PUT/DELETE/GET ``/obj``, GET
``/meta``) over :mod:`leofs.internal.wire` frames, with the same status meanings. A connection is
served only after its handshake proved the cluster secret; a failed proof counts against the
node's :class:`~leofs.internal.secret.SecretGuard` (as an HTTP 403 does) and closes the
connection. Replies go out whole and in order per connection; large reads are sent from the
container file with sendfile.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os

from leofs.internal.frames import FrameConnection
from leofs.internal.messages import Written
from leofs.internal.secret import SecretGuard
from leofs.internal.wire import (
    AUTH,
    AUTH_OK,
    DELETE,
    HELLO,
    MAGIC,
    META,
    NONCE_BYTES,
    PREFACE,
    PUT,
    REFUSED,
    REPLY,
    REQUEST_TYPES,
    VERSION,
    AuthOk,
    Hello,
    ProtocolError,
    Reply,
    Request,
    auth_decoder,
    check_preface,
    client_proof,
    encode,
    frame_prefix,
    request_decoder,
    server_proof,
)
from leofs.node.coordinator import Coordinator
from leofs.node.object_calls import FileRegion, ObjectCalls
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.rpc")

HANDSHAKE_HEADER = 1024  # an Auth is about 70 bytes
#: a connection that has not completed the handshake by then is closed (it holds no request)
HANDSHAKE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 30.0  # at shutdown, calls in flight get this long to finish


class RpcServer:
    """Serves binary connections handed over by the node's listener (:mod:`leofs.node.listener`)."""

    def __init__(self, secret: str, guard: SecretGuard, store: ObjectStore, coordinator: Coordinator) -> None:
        self.secret = secret.encode()
        self.guard = guard
        self.store = store
        self.coordinator = coordinator
        self.calls = ObjectCalls(store, coordinator)
        self.connections: set[ServerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def connection(self) -> ServerConnection:
        return ServerConnection(self)

    def close(self) -> None:
        """Hang up every connection (requests already received still complete)."""
        for conn in list(self.connections):
            conn.abort()

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Let the calls already received finish (they are bounded by their own timeouts); a reply
        stuck in a sendfile whose connection was aborted never finishes, so the wait is bounded."""
        if self.tasks:
            _, stuck = await asyncio.wait(set(self.tasks), timeout=timeout)
            for task in stuck:
                task.cancel()
            if stuck:
                log.warning("%d binary calls still running after %.0f s at shutdown: cancelled", len(stuck), timeout)

    # -- object calls -------------------------------------------------------------------------------
    async def serve(self, conn: ServerConnection, kind: int, rid: int, req: Request, data: bytes | bytearray) -> None:
        try:
            try:
                reply, body, file = await self._dispatch(kind, req, data)
            except ValueError as exc:  # a request that does not decode into its call
                reply, body, file = Reply(400, message=str(exc)), b"", None
            except Exception as exc:  # answered as HTTP would answer it: 500, logged
                log.exception("binary call %d on %r failed", kind, req.key)
                reply, body, file = Reply(500, message=f"{type(exc).__name__}: {exc}"), b"", None
            header = encode(reply)
            if file is not None:
                fobj, offset, count = file
                with fobj:
                    await conn.send(REPLY, rid, header, file=(fobj, offset, count))
            elif not conn.try_send(REPLY, rid, header, body):
                await conn.send(REPLY, rid, header, body)
        except ConnectionError:  # the caller went away: the work is done, nobody to answer
            log.info("binary caller of %r went away before its answer", req.key)
        except Exception:  # an answer that cannot be sent: the caller must not wait for its timeout
            log.exception("binary reply to a call on %r failed; closing the connection", req.key)
            conn.abort()

    async def _dispatch(self, kind: int, req: Request,
                        data: bytes | bytearray) -> tuple[Reply, bytes, FileRegion | None]:  # fmt: skip
        """Decode the request into its object call (:mod:`leofs.node.object_calls`); encode the answer."""
        calls = self.calls
        if kind == PUT:
            if req.put is None:
                raise ValueError("a PUT needs its put header")
            answer = await calls.put(req.ns, req.key, memoryview(data), req.put, coordinate=req.coordinate,
                                     deadline=req.deadline)  # fmt: skip
        elif kind == DELETE:
            answer = await calls.delete(req.ns, req.key, coordinate=req.coordinate, deadline=req.deadline,
                                        expect=req.expect, clock=req.clock, timestamp=req.timestamp)  # fmt: skip
        elif kind == META:
            answer = await calls.meta(req.ns, req.key, coordinate=req.coordinate)
        else:
            answer = await calls.get(req.ns, req.key, coordinate=req.coordinate, clock=req.clock, match=req.match,
                                     start=req.start, length=req.length)  # fmt: skip
        if answer.written is not None:
            return _written(answer.written)
        reply = Reply(answer.status, entry=answer.entry, applied=answer.applied, message=answer.message)
        return reply, answer.data, answer.file


class ServerConnection(FrameConnection):
    """One binary connection: preface, handshake, then requests (each served in its own task)."""

    def __init__(self, server: RpcServer) -> None:
        super().__init__()
        self.server = server
        self._prefaced = False
        self._nonce = os.urandom(NONCE_BYTES)
        self._authenticated = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.connections.add(self)
        self._deadline = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        if not self._authenticated and not self.closed:
            log.warning("binary connection from %s: no handshake within %.0f s; closed", self.peer(),
                        HANDSHAKE_TIMEOUT)  # fmt: skip
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._deadline.cancel()
        self.server.connections.discard(self)

    def preface(self, pending: memoryview) -> int:
        if self._prefaced:
            return 0
        if len(pending) < len(PREFACE):
            if bytes(pending[: len(MAGIC)]) != MAGIC[: len(pending)]:
                self._refuse(400, "not a leofs binary connection")
            return -1  # wait for the rest
        try:
            check_preface(bytes(pending[: len(PREFACE)]))
        except ProtocolError as exc:
            self._refuse(400, str(exc))
            return -1
        self._prefaced = True
        self.try_send(HELLO, 0, encode(Hello(VERSION, self._nonce)))
        return len(PREFACE)

    def _refuse(self, status: int, message: str) -> None:
        log.warning("refused a binary connection from %s: %s", self.peer(), message)
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.write(_refusal(status, message))
            self.closed = True
            self.transport.close()  # after the refusal is flushed

    def check_frame(self, kind: int, hlen: int, dlen: int) -> None:
        # before the handshake only a small AUTH is accepted: nothing is buffered for a stranger
        if not self._authenticated and (kind != AUTH or dlen or hlen > HANDSHAKE_HEADER):
            raise ProtocolError(f"frame type {kind} ({hlen}+{dlen} bytes) before the handshake")

    def frame_received(self, kind: int, rid: int, header: bytes, data: bytes | bytearray) -> None:
        if self._authenticated and kind in REQUEST_TYPES:
            req = request_decoder.decode(header)
            task = asyncio.ensure_future(self.server.serve(self, kind, rid, req, data))
            self.server.tasks.add(task)
            task.add_done_callback(self.server.tasks.discard)
            return
        if kind == AUTH and not self._authenticated:
            auth = auth_decoder.decode(header)
            secret = self.server.secret
            if not hmac.compare_digest(auth.proof, client_proof(secret, self._nonce, auth.nonce)):
                wait = self.server.guard.failed(self.peer())
                self._refuse(429 if wait else 403, "throttled: too many failed cluster-secret checks"
                             if wait else "bad cluster secret")  # fmt: skip
                return
            self._authenticated = True
            self.try_send(AUTH_OK, 0, encode(AuthOk(server_proof(secret, self._nonce, auth.nonce))))
            return
        self.protocol_error(f"unexpected frame type {kind}" + ("" if self._authenticated else " before the handshake"))


def _written(written: Written) -> tuple[Reply, bytes, None]:
    """A coordinated write's reply: the replaced record's data goes as the frame's data."""
    if written.previous_data is None:
        return Reply(200, written=written), b"", None
    return Reply(200, written=Written(written.entry, written.previous), previous_data=True), written.previous_data, None


def _refusal(status: int, message: str) -> bytes:
    return frame_prefix(REFUSED, 0, encode(Reply(status, message=message)))
