"""AWS Signature Version 2 for S3 (HMAC-SHA1), in the Authorization header or presigned.

String to sign (S3 "Signing and Authenticating REST Requests")::

    VERB\\nContent-MD5\\nContent-Type\\nDate\\n<canonicalized x-amz-* headers><canonicalized resource>

Date is empty when x-amz-date is present (it is then among the x-amz-* headers) and is the
Expires value for presigned URLs. The resource is ``/bucket/key`` (the bucket prefixed for
virtual-host requests) plus the sub-resources of the query, sorted by name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, unquote, unquote_to_bytes

from leofs.s3.errors import S3Error

#: query parameters that are part of the V2 canonical resource (AWS's list and botocore's)
SUBRESOURCES: Final = frozenset(
    (
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    )
)


def canonical_resources(raw_path: str, raw_query: str, virtual_host_bucket: str | None) -> list[str]:
    """Candidate canonicalized resources: the path as sent, then its AWS re-encoding."""
    path = raw_path or "/"
    paths = [path]
    encoded = quote(unquote_to_bytes(path.encode("utf-8", "surrogateescape")), safe="/~")
    if encoded != path:
        paths.append(encoded)
    if not virtual_host_bucket and path.count("/") == 1 and len(path) > 1:
        # a path-style bucket request: botocore (and AWS) sign the resource as "/bucket/"
        paths += [p + "/" for p in paths]
    subs: list[tuple[str, str | None]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = unquote(name)
        if name in SUBRESOURCES:
            subs.append((name, unquote(value) if eq else None))
    subs.sort(key=lambda nv: nv[0])
    suffix = ""
    if subs:
        suffix = "?" + "&".join(n if v is None else f"{n}={v}" for n, v in subs)
    prefix = f"/{virtual_host_bucket}" if virtual_host_bucket else ""
    return [prefix + p + suffix for p in paths]


def canonical_amz_headers(headers: Mapping[str, str]) -> str:
    """``name:value\\n`` for each x-amz-* header (lower-case names, sorted, values trimmed)."""
    amz = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-amz-"))
    return "".join(f"{k}:{v.strip()}\n" for k, v in amz)


def sign(secret: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign."""
    mac = hmac.new(
        secret.encode("utf-8", "surrogateescape"), string_to_sign.encode("utf-8", "surrogateescape"), hashlib.sha1
    ).digest()
    return base64.b64encode(mac).decode("ascii")


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    date_line: str,
    secret: str,
    signature: str,
    virtual_host_bucket: str | None,
) -> None:
    """Check a V2 signature against each candidate resource; SignatureDoesNotMatch if none."""
    head = (
        f"{method}\n{headers.get('content-md5', '').strip()}\n{headers.get('content-type', '').strip()}\n"
        f"{date_line}\n{canonical_amz_headers(headers)}"
    )
    provided = signature.strip().encode("utf-8", "surrogateescape")
    for resource in canonical_resources(raw_path, raw_query, virtual_host_bucket):
        expected = sign(secret, head + resource).encode()
        if hmac.compare_digest(expected, provided):
            return
    raise S3Error("SignatureDoesNotMatch")


def parse_authorization(value: str) -> tuple[str, str]:
    """(access key, signature) of ``AWS AKID:signature``."""
    _, _, rest = value.strip().partition(" ")
    access_key, colon, signature = rest.strip().partition(":")
    if not colon or not access_key or not signature:
        raise S3Error("InvalidArgument", "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature")
    return access_key, signature
