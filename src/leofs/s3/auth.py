"""Request authentication: SigV4 and SigV2, in the Authorization header or presigned in the query.

Pure protocol code: no I/O, no server objects. The gateway passes the request's parts and a
function that maps an access key to its secret; this module answers who signed the request and
how its payload must be checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import unquote

import msgspec

from leofs.s3 import sigv2, sigv4
from leofs.s3.errors import S3Error
from leofs.s3.numeric import decimal

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


_V4_QUERY_MARKERS: Final = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
#: x-amz-* request headers S3 accepts unsigned: the payload hash is checked against the body anyway
_UNSIGNED_EXEMPT: Final = frozenset({"x-amz-content-sha256"})
_V2_QUERY_MARKERS: Final = ("AWSAccessKeyId", "Signature")


def parse_query(raw_query: str) -> dict[str, str]:
    """Decoded query parameters (first value wins; '+' is kept literally, as S3 does)."""
    params: dict[str, str] = {}
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            params.setdefault(unquote(name), unquote(value))
    return params


def _secret(lookup_secret: Callable[[str], str | None], access_key: str) -> str:
    # bytes that are not UTF-8 (kept as surrogate escapes) name no user, and no store can look them up
    secret = lookup_secret(access_key) if access_key.isascii() or _utf8(access_key) else None
    if secret is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    return secret


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def authenticate(
    req: RequestParts,
    lookup_secret: Callable[[str], str | None],
    now: dt.datetime,
    *,
    virtual_host_bucket: str | None = None,
    max_skew: float = 900.0,
) -> AuthResult:
    """Authenticate a request: SigV4 or SigV2, in the Authorization header or presigned.

    Returns who signed it (anonymous when there is no signature at all) and how its payload must
    be checked (see :class:`AuthResult`). ``now`` is the server time (naive = UTC);
    ``virtual_host_bucket`` is the bucket named by the Host header, which SigV2 signs as part
    of the resource. Raises S3Error: InvalidAccessKeyId, SignatureDoesNotMatch,
    AuthorizationHeaderMalformed, AuthorizationQueryParametersError, InvalidArgument,
    AccessDenied (missing date, expired URL), RequestTimeTooSkewed, NotImplemented (SigV4a).
    """
    authorization = req.headers.get("authorization")
    params = parse_query(req.raw_query) if req.raw_query else {}
    v4_query = any(m in params for m in _V4_QUERY_MARKERS)
    v2_query = not v4_query and any(m in params for m in _V2_QUERY_MARKERS)
    if authorization is not None and (v4_query or v2_query):
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
            "string parameter or the Authorization header should be specified",
            ArgumentName="Authorization",
        )
    if authorization is not None:
        scheme = authorization.strip().partition(" ")[0]
        if scheme == sigv4.ALGORITHM:
            return _v4_header(req, authorization, lookup_secret, now, max_skew)
        if scheme == "AWS":
            return _v2_header(req, authorization, lookup_secret, now, virtual_host_bucket, max_skew)
        if scheme == sigv4.ECDSA_ALGORITHM:
            raise S3Error("NotImplemented", "SigV4a (ECDSA) signatures are not implemented.")
        raise S3Error("InvalidArgument", "Unsupported Authorization Type", ArgumentName="Authorization")
    if v4_query:
        return _v4_presigned(req, params, lookup_secret, now, max_skew)
    if v2_query:
        return _v2_presigned(req, params, lookup_secret, now, virtual_host_bucket)
    return AuthResult(access_key=None, version=0)


def require_signed(headers: Mapping[str, str], signed_headers: list[str]) -> None:
    """AccessDenied unless ``host`` and every ``x-amz-*`` request header are among the signed headers.

    An unsigned x-amz-* header would let the holder of a presigned URL (or a man in the middle)
    change what a signed request does: turn a PUT into a copy, set an ACL, add metadata.
    """
    signed = set(signed_headers)
    missing = [] if "host" in signed else ["host"]
    missing += sorted(
        name for name in headers if name.startswith("x-amz-") and name not in signed and name not in _UNSIGNED_EXEMPT
    )
    if missing:
        raise S3Error(
            "AccessDenied", "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(missing),
        )


def _v4_result(
    access_key: str, match: sigv4.V4Match, signature: str, amz_date: str, scope: str, presigned: bool
) -> AuthResult:
    payload = match.payload
    if payload in sigv4.SIGNED_STREAMING:
        return AuthResult(
            access_key=access_key,
            version=4,
            payload=payload,
            signing_key=match.key,
            seed_signature=signature.strip().lower(),
            amz_date=amz_date,
            scope=scope,
            presigned=presigned,
        )
    if len(payload) == 64:
        payload = payload.lower()
    return AuthResult(access_key=access_key, version=4, payload=payload, presigned=presigned)


def _v4_header(
    req: RequestParts,
    authorization: str,
    lookup_secret: Callable[[str], str | None],
    now: dt.datetime,
    max_skew: float,
) -> AuthResult:
    header = sigv4.parse_authorization(authorization)
    payloads = sigv4.payload_candidates(req.headers.get("x-amz-content-sha256"))
    epoch, amz_date = sigv4.request_time(req.headers)
    sigv4.check_header_scope(header, amz_date)
    secret = _secret(lookup_secret, header.access_key)
    require_signed(req.headers, header.signed_headers)
    sigv4.check_skew(epoch, now, max_skew)
    scope = "/".join(header.scope_parts)
    match = sigv4.verify(
        method=req.method,
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        signed_headers=header.signed_headers,
        payloads=payloads,
        secret=secret,
        amz_date=amz_date,
        scope=scope,
        signature=header.signature,
        presigned=False,
    )
    return _v4_result(header.access_key, match, header.signature, amz_date, scope, False)


def _v4_presigned(
    req: RequestParts,
    params: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: dt.datetime,
    max_skew: float,
) -> AuthResult:
    query = sigv4.parse_presigned(params)
    secret = _secret(lookup_secret, query.access_key)
    require_signed(req.headers, query.signed_headers)
    sigv4.check_presigned_time(query, now, max_skew)
    content = req.headers.get("x-amz-content-sha256")
    payloads = [PAYLOAD_UNSIGNED]
    if content is not None and content != PAYLOAD_UNSIGNED:
        payloads = [*sigv4.payload_candidates(content), PAYLOAD_UNSIGNED]
    scope = "/".join(query.scope_parts)
    match = sigv4.verify(
        method=req.method,
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        signed_headers=query.signed_headers,
        payloads=payloads,
        secret=secret,
        amz_date=query.amz_date,
        scope=scope,
        signature=query.signature,
        presigned=True,
    )
    return _v4_result(query.access_key, match, query.signature, query.amz_date, scope, True)


def _v2_header(
    req: RequestParts,
    authorization: str,
    lookup_secret: Callable[[str], str | None],
    now: dt.datetime,
    virtual_host_bucket: str | None,
    max_skew: float,
) -> AuthResult:
    access_key, signature = sigv2.parse_authorization(authorization)
    epoch, _ = sigv4.request_time(req.headers)
    secret = _secret(lookup_secret, access_key)
    sigv4.check_skew(epoch, now, max_skew)
    date_line = "" if "x-amz-date" in req.headers else req.headers.get("date", "").strip()
    sigv2.verify(
        method=req.method,
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=req.headers,
        date_line=date_line,
        secret=secret,
        signature=signature,
        virtual_host_bucket=virtual_host_bucket,
    )
    return AuthResult(access_key=access_key, version=2)


def _v2_presigned(
    req: RequestParts,
    params: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: dt.datetime,
    virtual_host_bucket: str | None,
) -> AuthResult:
    access_key, signature, expires = (
        params.get("AWSAccessKeyId"),
        params.get("Signature"),
        params.get("Expires"),
    )
    if not access_key or not signature or not expires:
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
        )
    expires_at = decimal(expires, saturate=2**63)  # far future: the URL is valid, but not forever
    if expires_at is None:
        raise S3Error("AccessDenied", "Invalid date (should be seconds since epoch): " + expires[:64])
    secret = _secret(lookup_secret, access_key)
    server = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now
    if server.timestamp() > expires_at:
        raise S3Error("AccessDenied", "Request has expired", Expires=expires)
    # headers a presigner moved into the query (x-amz-*, content-type/md5) count as headers
    headers = dict(req.headers)
    for name, value in params.items():
        lname = name.lower()
        if (lname.startswith("x-amz-") or lname in ("content-type", "content-md5")) and lname not in headers:
            headers[lname] = value
    sigv2.verify(
        method=req.method,
        raw_path=req.raw_path,
        raw_query=req.raw_query,
        headers=headers,
        date_line=expires,
        secret=secret,
        signature=signature,
        virtual_host_bucket=virtual_host_bucket,
    )
    return AuthResult(access_key=access_key, version=2, presigned=True)
