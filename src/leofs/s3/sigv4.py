"""AWS Signature Version 4 for S3: canonical requests, signing keys, header and query auth.

The canonical request follows the S3 API reference ("Signature Calculations for the Authorization
Header" and "Authenticating Requests: Using Query Parameters"). S3 does not normalize paths, and
clients percent-encode differently, so the canonical URI is first the raw path re-encoded per the
AWS rules, then, if that does not verify, the path exactly as sent.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from leofs.s3.conditions import parse_http_date
from leofs.s3.errors import S3Error
from leofs.s3.numeric import decimal

ALGORITHM: Final = "AWS4-HMAC-SHA256"
ECDSA_ALGORITHM: Final = "AWS4-ECDSA-P256-SHA256"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
UNSIGNED: Final = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_ECDSA_PAYLOADS: Final = (
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
)
_KNOWN_PAYLOADS: Final = frozenset((UNSIGNED, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER))
SIGNED_STREAMING: Final = frozenset((STREAMING_SIGNED, STREAMING_SIGNED_TRAILER))
_HEX64_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE_RE: Final = re.compile(r"\d{8}T\d{6}Z")
_MAX_EXPIRES: Final = 604800


def _b(text: str) -> bytes:
    """UTF-8 bytes of text as received (undecodable bytes survive as surrogate escapes)."""
    return text.encode("utf-8", "surrogateescape")


_KEY_CACHE: dict[tuple[str, str, str, str], bytes] = {}
_KEY_CACHE_MAX: Final = 512


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for (secret, yyyymmdd, region, service); cached (bounded)."""
    cache_key = (secret, date, region, service)
    key = _KEY_CACHE.get(cache_key)
    if key is None:
        k = hmac.digest(_b("AWS4" + secret), _b(date), "sha256")
        k = hmac.digest(k, _b(region), "sha256")
        k = hmac.digest(k, _b(service), "sha256")
        key = hmac.digest(k, b"aws4_request", "sha256")
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            del _KEY_CACHE[next(iter(_KEY_CACHE))]
        _KEY_CACHE[cache_key] = key
    return key


def uri_encode(raw: str, *, keep_slash: bool) -> str:
    """Percent-decode ``raw`` then encode it per AWS: everything but A-Za-z0-9-._~ (and '/')."""
    return quote(unquote_to_bytes(_b(raw)), safe="/" if keep_slash else "")


_PLAIN_PATH_RE: Final = re.compile(r"[A-Za-z0-9\-._~/]*")


def canonical_uris(raw_path: str) -> list[str]:
    """Candidate canonical URIs: the AWS re-encoding of the path, then the path as sent."""
    path = raw_path or "/"
    if _PLAIN_PATH_RE.fullmatch(path):  # nothing to decode or encode
        return [path]
    encoded = uri_encode(path, keep_slash=True)
    return [encoded] if encoded == path else [encoded, path]


def canonical_query(raw_query: str, *, exclude: str | None = None, plus_is_space: bool = False) -> str:
    """The canonical query string: pairs decoded, re-encoded per AWS, sorted by name then value.

    ``exclude`` drops a parameter by decoded name (X-Amz-Signature for presigned URLs).
    """
    if not raw_query:
        return ""
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if plus_is_space:
            name, value = name.replace("+", " "), value.replace("+", " ")
        if exclude is not None and unquote_to_bytes(_b(name)) == exclude.encode():
            continue
        pairs.append((uri_encode(name, keep_slash=False), uri_encode(value, keep_slash=False)))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def canonical_headers(headers: Mapping[str, str], signed: list[str]) -> str:
    """``name:trimmed value\\n`` for each signed header, in the order the client listed them."""
    return "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)


def parse_amz_date(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 basic timestamp (yyyymmddThhmmssZ), or None."""
    if not _AMZ_DATE_RE.fullmatch(value):
        return None
    return _amz_date_seconds(value)


@functools.lru_cache(maxsize=256)
def _amz_date_seconds(value: str) -> float | None:
    # Requests signed in the same second share the string: parse it once (strptime is slow).
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _epoch(now: dt.datetime) -> float:
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.timestamp()


def _fmt_amz(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


class V4Match:
    """The outcome of a verified SigV4 signature."""

    __slots__ = ("key", "payload")

    def __init__(self, payload: str, key: bytes) -> None:
        self.payload = payload
        self.key = key


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payloads: list[str],
    secret: str,
    amz_date: str,
    scope: str,
    signature: str,
    presigned: bool,
) -> V4Match:
    """Check ``signature`` against each candidate canonical request; SignatureDoesNotMatch if none.

    Candidates: each payload hash in ``payloads`` x each canonical URI, then, when the query has
    a '+', the same with '+' read as a space.
    """
    date, region, service, _ = scope.split("/")
    key = signing_key(secret, date, region, service)
    exclude = "X-Amz-Signature" if presigned else None
    hdrs = canonical_headers(headers, signed_headers)
    signed = ";".join(signed_headers)
    provided = _b(signature.strip().lower())
    queries = [canonical_query(raw_query, exclude=exclude)]
    if "+" in raw_query:
        queries.append(canonical_query(raw_query, exclude=exclude, plus_is_space=True))
    for query in queries:
        for payload in payloads:
            for uri in canonical_uris(raw_path):
                creq = f"{method}\n{uri}\n{query}\n{hdrs}\n{signed}\n{payload}"
                sts = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(_b(creq)).hexdigest()}"
                expected = hmac.new(key, _b(sts), hashlib.sha256).hexdigest().encode()
                if hmac.compare_digest(expected, provided):
                    return V4Match(payload, key)
    raise S3Error("SignatureDoesNotMatch")


def _malformed(message: str | None = None) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", message)


def _check_scope(parts: list[str], amz_date: str, err: Callable[[str], S3Error]) -> None:
    date, _region, service, terminal = parts
    if date != amz_date[:8]:
        raise err(f'Invalid credential date "{date}". This date is not the same as X-Amz-Date: "{amz_date}".')
    if service != "s3":
        raise err(f'Incorrect service "{service}". This endpoint belongs to "s3".')
    if terminal != "aws4_request":
        raise err(f'Incorrect terminal "{terminal}". This endpoint uses "aws4_request".')


def split_credential(credential: str, err: Callable[[str], S3Error]) -> tuple[str, list[str]]:
    """Split ``AKID/date/region/service/aws4_request`` into (access key, scope parts)."""
    parts = credential.strip().split("/")
    if len(parts) < 5 or not parts[0]:
        raise err(f"Error parsing the Credential parameter: {credential!r}.")
    return "/".join(parts[:-4]), parts[-4:]


def payload_candidates(value: str | None) -> list[str]:
    """The payload hashes to try for a header-signed request, from its x-amz-content-sha256.

    Absent (AWS requires it; generic SigV4 signers omit it): the empty-body hash, then
    UNSIGNED-PAYLOAD. ECDSA streaming modes -> NotImplemented; anything else -> InvalidArgument.
    """
    if value is None:
        return [EMPTY_SHA256, UNSIGNED]
    if value in _KNOWN_PAYLOADS or _HEX64_RE.fullmatch(value):
        return [value]
    if value in _ECDSA_PAYLOADS:
        raise S3Error("NotImplemented", "ECDSA (SigV4a) streaming payloads are not implemented.")
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=value,
    )


class V4Header:
    """The parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    __slots__ = ("access_key", "scope_parts", "signature", "signed_headers")

    def __init__(self, access_key: str, scope_parts: list[str], signed_headers: list[str], signature: str):
        self.access_key = access_key
        self.scope_parts = scope_parts
        self.signed_headers = signed_headers
        self.signature = signature


# The form every SDK sends; anything else takes the general parser below.
_AUTHORIZATION_RE: Final = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([0-9a-f]+)"
)


@functools.lru_cache(maxsize=256)
def _credential_and_headers(credential: str, signed_headers: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    # A client sends the same credential and header list again and again: split them once.
    access_key, scope_parts = split_credential(credential, _malformed)
    signed = tuple(h.strip().lower() for h in signed_headers.split(";") if h.strip())
    return access_key, tuple(scope_parts), signed


def parse_authorization(value: str) -> V4Header:
    """Parse the components of a SigV4 Authorization header (AuthorizationHeaderMalformed)."""
    common = _AUTHORIZATION_RE.fullmatch(value)
    if common is not None:
        access_key, scope, names = _credential_and_headers(common[1], common[2])
        return V4Header(access_key, list(scope), list(names), common[3])
    _, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, val = item.strip().partition("=")
        if eq:
            fields[name.strip()] = val.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if not fields.get(f)]
    if missing:
        raise _malformed(f"The authorization header is malformed; missing {missing[0]}.")
    access_key, scope_parts = split_credential(fields["Credential"], _malformed)
    signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip()]
    return V4Header(access_key, scope_parts, signed, fields["Signature"])


def request_time(headers: Mapping[str, str]) -> tuple[float, str]:
    """(epoch, ISO basic timestamp) of a header-signed request: x-amz-date, else Date.

    Missing or unparsable -> AccessDenied, as S3 answers.
    """
    amz = headers.get("x-amz-date")
    if amz is not None:
        stripped = amz.strip()
        epoch = parse_amz_date(stripped)
        if epoch is not None:
            return epoch, stripped
        http = parse_http_date(amz)
        if http is not None and http >= 0:
            return float(http), _fmt_amz(http)
    else:
        date = headers.get("date")
        parsed = parse_http_date(date) if date is not None else None
        if parsed is not None and parsed >= 0:  # before the epoch: no valid date (AccessDenied)
            return float(parsed), _fmt_amz(parsed)
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def check_skew(request_epoch: float, now: dt.datetime, max_skew: float) -> None:
    """RequestTimeTooSkewed when the request time is more than ``max_skew`` seconds off."""
    server = _epoch(now)
    if abs(server - request_epoch) > max_skew:
        raise S3Error(
            "RequestTimeTooSkewed",
            RequestTime=_fmt_amz(request_epoch),
            ServerTime=_fmt_amz(server),
            MaxAllowedSkewMilliseconds=str(int(max_skew * 1000)),
        )


def check_header_scope(header: V4Header, amz_date: str) -> None:
    """Validate the credential scope of a header signature against the request date."""
    _check_scope(header.scope_parts, amz_date, _malformed)


def _qerr(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


class V4Query:
    """The parsed X-Amz-* parameters of a SigV4 presigned URL."""

    __slots__ = ("access_key", "amz_date", "epoch", "expires", "scope_parts", "signature", "signed_headers")

    def __init__(
        self,
        access_key: str,
        scope_parts: list[str],
        amz_date: str,
        epoch: float,
        expires: int,
        signed_headers: list[str],
        signature: str,
    ) -> None:
        self.access_key = access_key
        self.scope_parts = scope_parts
        self.amz_date = amz_date
        self.epoch = epoch
        self.expires = expires
        self.signed_headers = signed_headers
        self.signature = signature


def parse_presigned(params: Mapping[str, str]) -> V4Query:
    """Validate and parse the presigned-URL parameters (AuthorizationQueryParametersError)."""
    algorithm = params.get("X-Amz-Algorithm")
    if algorithm == ECDSA_ALGORITHM:
        raise S3Error("NotImplemented", "SigV4a (ECDSA) signatures are not implemented.")
    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    )
    # an empty X-Amz-SignedHeaders is well-formed: it fails later for not signing host, as in S3
    if any(not params.get(name) for name in required if name != "X-Amz-SignedHeaders") or (
        "X-Amz-SignedHeaders" not in params
    ):
        raise _qerr(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if algorithm != ALGORITHM:
        raise _qerr('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    amz_date = params["X-Amz-Date"]
    epoch = parse_amz_date(amz_date)
    if epoch is None:
        raise _qerr("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    expires_text = params["X-Amz-Expires"]
    negative = expires_text.startswith("-") and decimal(expires_text[1:], saturate=1) is not None
    expires = 0 if negative else decimal(expires_text, saturate=_MAX_EXPIRES + 1)
    if expires is None:
        raise _qerr("X-Amz-Expires should be a number")
    # a lifetime out of bounds is a URL that is not valid now: 403, as for an expired one (AWS)
    if expires < 1:
        raise S3Error("AccessDenied", "X-Amz-Expires must be non-negative")
    if expires > _MAX_EXPIRES:
        raise S3Error("AccessDenied", "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    access_key, scope_parts = split_credential(params["X-Amz-Credential"], _qerr)
    _check_scope(scope_parts, amz_date, _qerr)
    signed = [h.strip().lower() for h in params["X-Amz-SignedHeaders"].split(";") if h.strip()]
    return V4Query(access_key, scope_parts, amz_date, epoch, expires, signed, params["X-Amz-Signature"])


def check_presigned_time(query: V4Query, now: dt.datetime, max_skew: float) -> None:
    """AccessDenied when the presigned URL has expired (or is dated too far in the future)."""
    server = _epoch(now)
    if server > query.epoch + query.expires:
        err = S3Error("AccessDenied", "Request has expired")
        err.extra["X-Amz-Expires"] = str(query.expires)
        err.extra["Expires"] = _fmt_amz(query.epoch + query.expires)
        err.extra["ServerTime"] = _fmt_amz(server)
        raise err
    if query.epoch - server > max_skew:
        raise S3Error("AccessDenied", "Request is not valid yet")
