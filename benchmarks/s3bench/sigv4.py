"""AWS Signature Version 4 for the load generator, with the signing key cached per day.

Bodies are sent as ``UNSIGNED-PAYLOAD`` so the client never hashes object data; the per-request
cost is two HMAC-SHA256 calls and one SHA-256 of the short canonical request.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def uri_encode(value: str, *, slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 wants it (``/`` kept in paths when ``slash``)."""
    return quote(value, safe="-_.~/" if slash else "-_.~")


class Signer:
    """Signs path-style S3 requests for one access key, region and service."""

    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "s3") -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.service = service
        self._day = ""
        self._key = b""
        self._scope = ""
        self._second = -1
        self._amz_date = ""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            k = _hmac(("AWS4" + self.secret_key).encode(), day)
            k = _hmac(k, self.region)
            k = _hmac(k, self.service)
            self._key = _hmac(k, "aws4_request")
            self._day = day
            self._scope = f"{day}/{self.region}/{self.service}/aws4_request"
        return self._key

    def _now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        return self._amz_date

    def headers(self, method: str, host: str, path: str, query: dict[str, str] | None = None,
                payload_hash: str = UNSIGNED_PAYLOAD) -> dict[str, str]:
        """Return the ``Authorization``, ``x-amz-date`` and ``x-amz-content-sha256`` headers.

        ``path`` must already be URI-encoded (as sent on the wire); ``query`` values are raw.
        """
        amz_date = self._now()
        key = self._signing_key(amz_date[:8])
        canonical_query = ""
        if query:
            canonical_query = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(query.items()))
        canonical = (f"{method}\n{path}\n{canonical_query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n"
                     f"x-amz-date:{amz_date}\n\n{_SIGNED_HEADERS}\n{payload_hash}")
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{self._scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Authorization": (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self._scope}, "
                              f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}"),
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash,
        }
