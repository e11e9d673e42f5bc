"""The local data socket: a storage node hands gateways on its host open container files
(docs/internal-api.md, "Local data socket").

Each storage node listens on a Linux *abstract* Unix socket named after its advertised address
(:func:`socket_name`). Abstract names live in the network namespace, so only processes of the same
host (and netns) can connect, and two nodes never share one (they cannot share host:port). The
socket is ``SOCK_SEQPACKET``: every message is one msgpack value, and an answer may carry a file
descriptor in ``SCM_RIGHTS`` ancillary data, which asyncio streams cannot carry; hence these small
helpers over a non-blocking socket and ``loop.add_reader``/``add_writer``.

Handshake (reusing the binary protocol's challenge-response, :mod:`leofs.internal.wire`): the node
checks ``SO_PEERCRED`` (the peer runs as its own uid), sends :class:`~leofs.internal.wire.Hello`;
the client answers :class:`~leofs.internal.wire.Auth`; the node answers :class:`Answer` 200 with its
own proof, or 403/429 and hangs up. Then each call is one :class:`OpenData` and one :class:`Answer`.
"""

from __future__ import annotations

import array
import asyncio
import os
import socket
import struct

import msgspec

VERSION = 1
PREFIX = "\0leofs-node/"
MAX_MESSAGE = 64 * 1024
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_FD_SIZE = array.array("i").itemsize


class OpenData(msgspec.Struct, frozen=True, array_like=True):
    """Open the data of the live version of (ns, key), which must have ``clock``."""

    ns: int
    key: bytes
    clock: int


class Answer(msgspec.Struct, frozen=True, omit_defaults=True):
    """The handshake's and every call's answer. Handshake: 200 + ``proof`` (the node's
    :func:`~leofs.internal.wire.server_proof`), or 403/429. Call: 200 with the container file's
    descriptor attached and the needle data's ``offset`` and ``size`` in it; 404 (absent or a
    tombstone), 409 (the live version has another clock), 500."""

    status: int
    proof: bytes = b""
    offset: int = 0
    size: int = 0
    message: str = ""


encode = msgspec.msgpack.Encoder().encode
open_decoder = msgspec.msgpack.Decoder(OpenData)
answer_decoder = msgspec.msgpack.Decoder(Answer)


def socket_name(address: str) -> str:
    """The abstract socket name of the node advertised at ``address`` (host:port)."""
    return PREFIX + address


def seqpacket() -> socket.socket:
    """A non-blocking Unix SOCK_SEQPACKET socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    _pid, uid, _gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return int(uid)


async def _ready(sock: socket.socket, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def send(sock: socket.socket, message: bytes, fds: list[int] | None = None) -> None:
    """Send one message, with ``fds`` attached (the caller keeps and closes its copies)."""
    while True:
        try:
            if fds:
                socket.send_fds(sock, [message], fds)
            else:
                sock.send(message)
            return
        except (BlockingIOError, InterruptedError):
            await _ready(sock, write=True)


async def receive(sock: socket.socket, max_fds: int = 0) -> tuple[bytes, list[int]]:
    """One message and the descriptors that came with it (the caller owns and closes them).
    ConnectionResetError when the peer hung up; ConnectionError when a message or its ancillary
    data was cut (the descriptors are closed)."""
    space = socket.CMSG_SPACE(max_fds * _FD_SIZE) if max_fds else 0
    while True:
        try:
            data, ancdata, flags, _ = sock.recvmsg(MAX_MESSAGE, space, socket.MSG_CMSG_CLOEXEC)
            break
        except (BlockingIOError, InterruptedError):
            await _ready(sock, write=False)
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    received = list(fds)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(received) > max_fds:
        close_all(received)
        raise ConnectionError("a local data message was cut")
    if not data:
        close_all(received)
        raise ConnectionResetError("the local data socket was closed")
    return data, received


def close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
