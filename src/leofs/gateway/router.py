"""From an HTTP request to an S3 operation: addressing (path, virtual host, CNAME) and dispatch.

One enum names every operation by its AWS name; handlers are registered per operation.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import unquote

from leofs.s3.errors import S3Error


class Op(enum.Enum):
    """S3 operations, by their names in the AWS API reference."""

    ListBuckets = "ListBuckets"
    CreateBucket = "CreateBucket"
    DeleteBucket = "DeleteBucket"
    HeadBucket = "HeadBucket"
    GetBucketLocation = "GetBucketLocation"
    GetBucketAcl = "GetBucketAcl"
    PutBucketAcl = "PutBucketAcl"
    GetBucketVersioning = "GetBucketVersioning"
    PutBucketVersioning = "PutBucketVersioning"
    ListObjects = "ListObjects"
    ListObjectsV2 = "ListObjectsV2"
    ListObjectVersions = "ListObjectVersions"
    ListMultipartUploads = "ListMultipartUploads"
    DeleteObjects = "DeleteObjects"
    PutObject = "PutObject"
    CopyObject = "CopyObject"
    GetObject = "GetObject"
    HeadObject = "HeadObject"
    DeleteObject = "DeleteObject"
    GetObjectAcl = "GetObjectAcl"
    PutObjectAcl = "PutObjectAcl"
    GetObjectAttributes = "GetObjectAttributes"
    CreateMultipartUpload = "CreateMultipartUpload"
    UploadPart = "UploadPart"
    UploadPartCopy = "UploadPartCopy"
    CompleteMultipartUpload = "CompleteMultipartUpload"
    AbortMultipartUpload = "AbortMultipartUpload"
    ListParts = "ListParts"
    PostObject = "PostObject"


#: operations that only read (the "READ" permission of an ACL) / that write ("WRITE")
READ_OPS = frozenset({
    Op.HeadBucket, Op.ListObjects, Op.ListObjectsV2, Op.ListObjectVersions, Op.GetObject,
    Op.HeadObject, Op.GetObjectAttributes, Op.GetBucketLocation, Op.ListMultipartUploads,
    Op.ListParts, Op.GetBucketVersioning,
})
WRITE_OPS = frozenset({
    Op.PutObject, Op.CopyObject, Op.DeleteObject, Op.DeleteObjects, Op.CreateMultipartUpload,
    Op.UploadPart, Op.UploadPartCopy, Op.CompleteMultipartUpload, Op.AbortMultipartUpload,
})
#: operations whose request body is part of the operation (read as a stream, not buffered)
STREAMING_BODY_OPS = frozenset({Op.PutObject, Op.UploadPart})


def resolve_target(host: str, raw_path: str, endpoints: list[str]) -> tuple[str | None, str | None, bool]:
    """Bucket and key of a request, and whether the bucket came from the Host (virtual host).

    LeoFS's rule: a Host equal to a known endpoint means path style; ``<bucket>.<endpoint>`` means
    virtual-host style; any other non-IP host names the bucket itself (CNAME style), unless the
    first path segment equals the host.
    """
    hostname = _strip_port(host).lower()
    path = raw_path
    if not path.startswith("/"):
        raise S3Error("InvalidURI")
    vhost_bucket: str | None = None
    if hostname and not _is_ip(hostname) and hostname not in endpoints:
        for endpoint in endpoints:
            if hostname.endswith("." + endpoint):
                vhost_bucket = hostname[: -len(endpoint) - 1]
                break
        else:
            if "." in hostname and not raw_path.startswith("/" + hostname):
                vhost_bucket = hostname
    if vhost_bucket is not None:
        key = unquote(path[1:]) if len(path) > 1 else None
        return _text_name(vhost_bucket), key, True
    rest = path[1:]
    if not rest:
        return None, None, False
    bucket, sep, key = rest.partition("/")
    bucket = unquote(bucket)
    return _text_name(bucket), (unquote(key) if sep and key else None), False


def _text_name(bucket: str) -> str:
    """A bucket name that can be looked up: bytes that are not UTF-8 (a Host header's arrive as
    surrogate escapes) name no bucket."""
    if not bucket.isascii():
        try:
            bucket.encode("utf-8")
        except UnicodeEncodeError:
            raise S3Error("InvalidBucketName") from None
    return bucket


def _strip_port(host: str) -> str:
    if host.startswith("["):  # IPv6 literal
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(hostname: str) -> bool:
    if hostname.startswith("["):
        return True
    parts = hostname.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def resolve_operation(
    method: str, bucket: str | None, key: str | None, query: Mapping[str, str], headers: Mapping[str, str]
) -> Op:
    """The S3 operation a request asks for (MethodNotAllowed when there is none)."""
    if bucket is None:
        if method in ("GET", "HEAD"):
            return Op.ListBuckets
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, query)
    if method == "GET":
        if "uploadId" in query:
            return Op.ListParts
        if "acl" in query:
            return Op.GetObjectAcl
        if "attributes" in query:
            return Op.GetObjectAttributes
        return Op.GetObject
    if method == "HEAD":
        return Op.HeadObject
    if method == "PUT":
        copy = "x-amz-copy-source" in headers
        if "partNumber" in query or "uploadId" in query:
            return Op.UploadPartCopy if copy else Op.UploadPart
        if "acl" in query:
            return Op.PutObjectAcl
        return Op.CopyObject if copy else Op.PutObject
    if method == "DELETE":
        return Op.AbortMultipartUpload if "uploadId" in query else Op.DeleteObject
    if method == "POST":
        if "uploads" in query:
            return Op.CreateMultipartUpload
        if "uploadId" in query:
            return Op.CompleteMultipartUpload
    raise S3Error("MethodNotAllowed")


def _bucket_operation(method: str, query: Mapping[str, str]) -> Op:
    if method == "GET":
        if "location" in query:
            return Op.GetBucketLocation
        if "acl" in query:
            return Op.GetBucketAcl
        if "versioning" in query:
            return Op.GetBucketVersioning
        if "versions" in query:
            return Op.ListObjectVersions
        if "uploads" in query:
            return Op.ListMultipartUploads
        if query.get("list-type") == "2":
            return Op.ListObjectsV2
        _refuse_unsupported(query)
        return Op.ListObjects
    if method == "HEAD":
        return Op.HeadBucket
    if method == "PUT":
        if "acl" in query:
            return Op.PutBucketAcl
        if "versioning" in query:
            return Op.PutBucketVersioning
        _refuse_unsupported(query)
        return Op.CreateBucket
    if method == "DELETE":
        _refuse_unsupported(query)
        return Op.DeleteBucket
    if method == "POST":
        if "delete" in query:
            return Op.DeleteObjects
        return Op.PostObject
    raise S3Error("MethodNotAllowed")


def _refuse_unsupported(query: Mapping[str, str]) -> None:
    for unsupported in _UNSUPPORTED_BUCKET_SUBRESOURCES:
        if unsupported in query:
            raise S3Error("NotImplemented", f"The bucket subresource '{unsupported}' is not implemented.")


_UNSUPPORTED_BUCKET_SUBRESOURCES = (
    "policy", "lifecycle", "cors", "website", "logging", "notification", "tagging", "replication",
    "encryption", "object-lock", "requestPayment", "accelerate", "analytics", "inventory", "metrics",
    "ownershipControls", "publicAccessBlock", "intelligent-tiering",
)
