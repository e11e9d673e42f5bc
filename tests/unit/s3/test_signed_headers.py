"""The rule that SigV4 must sign host and every x-amz-* header (x-amz-content-sha256 exempt)."""

from __future__ import annotations

import pytest

from leofs.s3.auth import require_signed
from leofs.s3.errors import S3Error


def test_signed_and_exempt_headers_pass() -> None:
    headers = {"host": "h", "x-amz-date": "d", "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amzn-trace-id": "t",
               "user-agent": "u", "content-type": "c"}
    require_signed(headers, ["host", "x-amz-date"])


@pytest.mark.parametrize(("headers", "signed", "missing"), [
    ({"host": "h", "x-amz-copy-source": "/b/k"}, ["host"], "x-amz-copy-source"),
    ({"host": "h", "x-amz-acl": "public-read", "x-amz-meta-a": "1"}, ["host", "x-amz-meta-a"], "x-amz-acl"),
    ({"host": "h"}, [], "host"),
    ({"x-amz-date": "d"}, ["x-amz-date"], "host"),
    ({"host": "h", "x-amz-tagging": "a=b", "x-amz-acl": "p"}, [], "host, x-amz-acl, x-amz-tagging"),
])
def test_unsigned_headers_are_refused(headers: dict[str, str], signed: list[str], missing: str) -> None:
    with pytest.raises(S3Error) as exc:
        require_signed(headers, signed)
    err = exc.value
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert err.message == "There were headers present in the request which were not signed"
    assert err.extra["HeadersNotSigned"] == missing
