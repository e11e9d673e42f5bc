"""Request authentication: SigV4 and SigV2, in the Authorization header or presigned in the query.

Pure protocol code: no I/O, no server objects. The gateway passes the request's parts and a
function that maps an access key to its secret; this module answers who signed the request and
how its payload must be checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import msgspec

#: payload modes (the value of x-amz-content-sha256, or what it implies)
PAYLOAD_UNSIGNED = "UNSIGNED-PAYLOAD"
PAYLOAD_STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
PAYLOAD_STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
PAYLOAD_STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


class RequestParts(msgspec.Struct, frozen=True):
    """The parts of an HTTP request that signatures cover, exactly as received.

    ``raw_path`` is the path as sent on the wire (still percent-encoded, no query);
    ``raw_query`` the query string without '?'; ``headers`` maps lower-case names to values
    (repeated headers joined with ',').
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]


class AuthResult(msgspec.Struct, frozen=True):
    """Who signed (``access_key`` None = anonymous) and how to check the payload.

    ``payload`` is one of: a 64-hex SHA-256 the body must match; PAYLOAD_UNSIGNED; one of the
    STREAMING-* modes; or "" when nothing is to be checked (SigV2, anonymous).
    For the signed streaming modes, ``signing_key``, ``seed_signature``, ``amz_date`` and
    ``scope`` let the aws-chunked decoder verify each chunk signature.
    """

    access_key: str | None
    version: int  # 2, 4, or 0 for anonymous
    payload: str = ""
    signing_key: bytes = b""
    seed_signature: str = ""
    amz_date: str = ""
    scope: str = ""
    presigned: bool = False
