"""The storage node's local data socket (docs/internal-api.md, "Local data socket").

A gateway on this host asks for the data of (ns, key, clock) and gets the container log's file
descriptor (read-only, its own open file description) with the needle data's offset and size, and
sends the chunk to its client with sendfile: no copy through this process or a TCP socket. The
descriptor stays valid after a compaction removed the log (an unlinked file stays readable while
open), which is why a descriptor is passed and never a path.

Nothing is served before the peer runs as this node's uid (``SO_PEERCRED``) and proved the
cluster secret (the binary protocol's challenge-response); a failed proof counts against the
node's :class:`~leofs.internal.secret.SecretGuard` as an HTTP 403 does.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket

import msgspec

from leofs.internal import local_data as ld
from leofs.internal.secret import SecretGuard
from leofs.internal.wire import NONCE_BYTES, Hello, auth_decoder, client_proof, server_proof
from leofs.internal.wire import encode as wire_encode
from leofs.storage.model import StaleEntry
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.local_data")

#: a connection that has not completed the handshake by then is closed
HANDSHAKE_TIMEOUT = 10.0
#: the SecretGuard's key for failures on this socket (every local process shares the host's address)
GUARD_PEER = "local"


class LocalDataServer:
    """Serves the local data socket of one node; ``start(address)``, ``close()``."""

    def __init__(self, secret: str, guard: SecretGuard, store: ObjectStore) -> None:
        self.secret = secret.encode()
        self.guard = guard
        self.store = store
        self.uid = os.getuid()
        self.name: str | None = None
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0  # descriptors handed out

    def start(self, address: str) -> bool:
        """Listen on the abstract socket of ``address``; False (logged) when the name is taken."""
        sock = ld.seqpacket()
        try:
            sock.bind(ld.socket_name(address))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            log.warning("local data socket for %s not served (%s): gateways on this host read over TCP",
                        address, exc)  # fmt: skip
            return False
        self._sock, self.name = sock, ld.socket_name(address)
        self._accepting = asyncio.ensure_future(self._accept(sock))
        return True

    async def close(self) -> None:
        """Stop listening and hang up every connection."""
        tasks = [t for t in (self._accepting, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # e.g. out of descriptors: do not spin
                log.warning("local data socket: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            task = asyncio.ensure_future(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                if not await self._handshake(conn):
                    return
            while True:
                message, _ = await ld.receive(conn)
                request = ld.open_decoder.decode(message)
                answer, fd = self._open(request)
                try:
                    await ld.send(conn, ld.encode(answer), [fd] if fd is not None else None)
                finally:
                    if fd is not None:
                        os.close(fd)  # the gateway has its own copy now
        except (ConnectionError, TimeoutError, msgspec.DecodeError):
            pass  # the gateway went away, or spoke garbage: hang up
        except OSError as exc:
            log.info("local data connection failed: %s", exc)
        except Exception:
            log.exception("local data connection failed")
        finally:
            conn.close()

    async def _handshake(self, conn: socket.socket) -> bool:
        if ld.peer_uid(conn) != self.uid:
            log.warning("refused a local data connection from uid %d (this node runs as %d)",
                        ld.peer_uid(conn), self.uid)  # fmt: skip
            await ld.send(conn, ld.encode(ld.Answer(403, message="another user")))
            return False
        nonce = os.urandom(NONCE_BYTES)
        await ld.send(conn, wire_encode(Hello(ld.VERSION, nonce)))
        message, _ = await ld.receive(conn)
        auth = auth_decoder.decode(message)
        if not hmac.compare_digest(auth.proof, client_proof(self.secret, nonce, auth.nonce)):
            wait = self.guard.failed(GUARD_PEER)
            await ld.send(conn, ld.encode(ld.Answer(429 if wait else 403, message="throttled: too many failed "
                                                    "cluster-secret checks" if wait else "bad cluster secret")))
            return False
        await ld.send(conn, ld.encode(ld.Answer(200, proof=server_proof(self.secret, nonce, auth.nonce))))
        return True

    def _open(self, req: ld.OpenData) -> tuple[ld.Answer, int | None]:
        """The answer to one call, and the read-only descriptor to attach to it."""
        entry = self.store.get(req.ns, req.key)
        for _ in range(2):
            if entry is None or entry.tombstone:
                return ld.Answer(404), None
            if entry.clock != req.clock:
                return ld.Answer(409, message=f"changed: local clock {entry.clock}"), None
            try:
                fobj, offset, size = self.store.open_data(entry)
            except StaleEntry:  # compacted or overwritten meanwhile: look again
                entry = self.store.get(req.ns, req.key)
                continue
            with fobj:
                # a read-only open file description of its own (the log's is read-write, and a
                # dup would share its file position): the same file, even once unlinked
                fd = os.open(f"/proc/self/fd/{fobj.fileno()}", os.O_RDONLY | os.O_CLOEXEC)
            self.served += 1
            return ld.Answer(200, offset=offset, size=size), fd
        return ld.Answer(409, message="changed while opening"), None
