"""The binary internal protocol's wire format (docs/internal-api.md, "Binary protocol").

Pure: no sockets, no event loop. A connection opens with the client's preface, ``PREFACE`` (a NUL,
``LEOFS`` and the protocol version byte: HTTP never starts with a NUL, so a node tells the two
protocols apart on one port). Then both ends exchange frames::

    u8 type | 3 bytes zero | u32 request id | u32 header length | u32 data length   (big-endian)
    header: msgpack (msgspec) of the type's message
    data:   raw bytes (object data), not part of the msgpack

A frame whose header is over :data:`MAX_HEADER` or whose data is over :data:`MAX_DATA` is a
protocol error: the receiver closes the connection without allocating for it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import msgspec

from leofs.internal.messages import PutHeader, Written
from leofs.storage.model import Entry

MAGIC = b"\x00LEOFS"
VERSION = 1
PREFACE = MAGIC + bytes([VERSION])
FRAME = struct.Struct(">B3xIII")
MAX_HEADER = 64 * 1024
MAX_DATA = 64 * 1024 * 1024  # the node's MAX_BODY: gateways cut objects into 5 MiB chunks
NONCE_BYTES = 32

# frame types: the handshake (request id 0), then requests and their replies
HELLO = 1  # server -> client: Hello (the server's nonce)
AUTH = 2  # client -> server: Auth (the client's nonce and proof)
AUTH_OK = 3  # server -> client: AuthOk (the server's proof)
REFUSED = 4  # server -> client: Reply with the reason; the server closes the connection
PUT = 10  # PUT /obj: data = the object's bytes
DELETE = 11  # DELETE /obj
META = 12  # GET /meta
GET = 13  # GET /obj: the reply's data = the object's bytes (or the range)
REPLY = 20
REQUEST_TYPES = frozenset({PUT, DELETE, META, GET})


class ProtocolError(Exception):
    """The peer broke the wire format (bad preface, oversized or malformed frame)."""


class Hello(msgspec.Struct, frozen=True, array_like=True):
    version: int
    nonce: bytes


class Auth(msgspec.Struct, frozen=True, array_like=True):
    nonce: bytes
    proof: bytes  # HMAC-SHA256(secret, "client" + server nonce + client nonce)


class AuthOk(msgspec.Struct, frozen=True, array_like=True):
    proof: bytes  # HMAC-SHA256(secret, "server" + client nonce + server nonce)


class Request(msgspec.Struct, frozen=True, omit_defaults=True):
    """An object call; which fields count depends on the frame type (as the HTTP query's do)."""

    ns: int
    key: bytes
    coordinate: bool = False  # the X-Leofs-Role: coordinate of HTTP
    put: PutHeader | None = None  # PUT
    deadline: float | None = None  # coordinated PUT/DELETE: X-Leofs-Deadline
    expect: int | None = None  # coordinated DELETE
    clock: int | None = None  # replica DELETE; GET of that version only
    timestamp: int | None = None  # replica DELETE
    match: int | None = None  # GET: 304 without data when the version has this clock
    start: int = 0  # GET range
    length: int | None = None


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to a request, with the HTTP API's status meanings (200/304/400/403/404/409/412/
    416/429/503/507); ``message`` is the error's text."""

    status: int
    entry: Entry | None = None  # META, GET, replica PUT/DELETE
    written: Written | None = None  # coordinated PUT/DELETE
    applied: bool = True  # replica PUT/DELETE: False when a newer version was already there
    message: str = ""
    #: coordinated PUT/DELETE: the frame's data is ``written.previous_data`` (a replaced parent
    #: record's data, which can be larger than a header may be)
    previous_data: bool = False


encode = msgspec.msgpack.Encoder().encode
hello_decoder = msgspec.msgpack.Decoder(Hello)
auth_decoder = msgspec.msgpack.Decoder(Auth)
auth_ok_decoder = msgspec.msgpack.Decoder(AuthOk)
request_decoder = msgspec.msgpack.Decoder(Request)
reply_decoder = msgspec.msgpack.Decoder(Reply)


def frame_prefix(kind: int, rid: int, header: bytes, data_len: int = 0) -> bytes:
    """The fixed header and the msgpack header of a frame (its data follows separately)."""
    if len(header) > MAX_HEADER or data_len > MAX_DATA:
        raise ProtocolError(f"frame too large: header {len(header)} bytes, data {data_len} bytes")
    return FRAME.pack(kind, rid, len(header), data_len) + header


def parse_frame_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int, int, int]:
    """(type, request id, header length, data length) at ``pos``; ProtocolError beyond the limits."""
    kind, rid, hlen, dlen = FRAME.unpack_from(buf, pos)
    if hlen > MAX_HEADER or dlen > MAX_DATA:
        raise ProtocolError(f"frame too large: header {hlen} bytes, data {dlen} bytes")
    return kind, rid, hlen, dlen


def check_preface(first: bytes) -> None:
    """ProtocolError unless ``first`` (the connection's first 7 bytes) is our preface."""
    if first[: len(MAGIC)] != MAGIC:
        raise ProtocolError("not a leofs binary connection")
    if first[len(MAGIC)] != VERSION:
        raise ProtocolError(f"protocol version {first[len(MAGIC)]} is not supported (this node speaks {VERSION})")


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, b"client" + server_nonce + client_nonce, hashlib.sha256).digest()


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, b"server" + client_nonce + server_nonce, hashlib.sha256).digest()
