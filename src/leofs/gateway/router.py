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
    GetObjectTagging = "GetObjectTagging"
    PutObjectTagging = "PutObjectTagging"
    DeleteObjectTagging = "DeleteObjectTagging"
    GetBucketTagging = "GetBucketTagging"
    PutBucketTagging = "PutBucketTagging"
    DeleteBucketTagging = "DeleteBucketTagging"


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
    """The S3 operation a request asks for.

    A request naming a subresource of the S3 API reference is that subresource's operation, or
    501 NotImplemented when it is not built (never a plain GET or PUT of the object or bucket);
    a method the subresource has no operation for is MethodNotAllowed.
    """
    if bucket is None:
        if method in ("GET", "HEAD"):
            return Op.ListBuckets
        raise S3Error("MethodNotAllowed")
    if key is None:
        return _bucket_operation(method, query)
    if method == "HEAD":
        return Op.HeadObject
    copy = "x-amz-copy-source" in headers
    if method == "PUT" and ("partNumber" in query or "uploadId" in query):
        return Op.UploadPartCopy if copy else Op.UploadPart
    found = _subresource(OBJECT_SUBRESOURCES, method, query)
    if found is not None:
        return found
    if method == "GET":
        return Op.GetObject
    if method == "PUT":
        return Op.CopyObject if copy else Op.PutObject
    if method == "DELETE":
        return Op.DeleteObject
    raise S3Error("MethodNotAllowed")


def _bucket_operation(method: str, query: Mapping[str, str]) -> Op:
    found = _subresource(BUCKET_SUBRESOURCES, method, query)
    if found is not None:
        return found
    if method == "GET":
        return Op.ListObjectsV2 if query.get("list-type") == "2" else Op.ListObjects
    if method == "HEAD":
        return Op.HeadBucket
    if method == "PUT":
        return Op.CreateBucket
    if method == "DELETE":
        return Op.DeleteBucket
    if method == "POST":
        return Op.PostObject
    raise S3Error("MethodNotAllowed")


def _subresource(table: Mapping[str, Mapping[str, Op | None]], method: str, query: Mapping[str, str]) -> Op | None:
    """The operation of the first subresource of ``table`` the query names (None: it names none)."""
    if method == "HEAD":
        return None  # HEAD is HeadBucket / HeadObject whatever the query
    for name, methods in table.items():
        if name not in query:
            continue
        if method not in methods:
            raise S3Error("MethodNotAllowed")
        op = methods[method]
        if op is None:
            raise S3Error("NotImplemented", f"The subresource '{name}' is not implemented ({method}).")
        return op
    return None


_G, _P, _D, _POST = "GET", "PUT", "DELETE", "POST"
_CRUD: dict[str, Op | None] = {_G: None, _P: None, _D: None}  # Get/Put/Delete<Thing>, none built
_GET_PUT: dict[str, Op | None] = {_G: None, _P: None}  # Get/Put<Thing>, none built

#: every bucket subresource of the S3 API reference (in the order the router tries them): its
#: operation per method, None for an operation that is not built (501 NotImplemented)
BUCKET_SUBRESOURCES: dict[str, dict[str, Op | None]] = {
    "location": {_G: Op.GetBucketLocation},
    "acl": {_G: Op.GetBucketAcl, _P: Op.PutBucketAcl},
    "versioning": {_G: Op.GetBucketVersioning, _P: Op.PutBucketVersioning},
    "versions": {_G: Op.ListObjectVersions},
    "uploads": {_G: Op.ListMultipartUploads},
    "delete": {_POST: Op.DeleteObjects},
    "tagging": {_G: Op.GetBucketTagging, _P: Op.PutBucketTagging, _D: Op.DeleteBucketTagging},
    "policy": _CRUD, "policyStatus": {_G: None}, "lifecycle": _CRUD, "cors": _CRUD, "website": _CRUD,
    "logging": _GET_PUT, "notification": _GET_PUT, "replication": _CRUD, "encryption": _CRUD,
    "object-lock": _GET_PUT, "requestPayment": _GET_PUT, "accelerate": _GET_PUT, "analytics": _CRUD,
    "inventory": _CRUD, "metrics": _CRUD, "intelligent-tiering": _CRUD, "ownershipControls": _CRUD,
    "publicAccessBlock": _CRUD, "metadataTable": {_G: None, _POST: None, _D: None},
    "metadataConfiguration": {_G: None, _POST: None, _D: None},
    "metadataInventoryTable": {_P: None}, "metadataJournalTable": {_P: None}, "session": {_G: None},
}
#: every object subresource of the S3 API reference, as for buckets (``uploadId`` and
#: ``partNumber`` on PUT are UploadPart / UploadPartCopy, decided before this table)
OBJECT_SUBRESOURCES: dict[str, dict[str, Op | None]] = {
    "uploadId": {_G: Op.ListParts, _POST: Op.CompleteMultipartUpload, _D: Op.AbortMultipartUpload},
    "uploads": {_POST: Op.CreateMultipartUpload},
    "acl": {_G: Op.GetObjectAcl, _P: Op.PutObjectAcl},
    "tagging": {_G: Op.GetObjectTagging, _P: Op.PutObjectTagging, _D: Op.DeleteObjectTagging},
    "attributes": {_G: Op.GetObjectAttributes},
    "retention": _GET_PUT, "legal-hold": _GET_PUT, "torrent": {_G: None}, "restore": {_POST: None},
    "select": {_POST: None}, "renameObject": {_P: None},
}
#: the bucket subresources answered 501 NotImplemented whatever the method
_UNSUPPORTED_BUCKET_SUBRESOURCES = tuple(
    name for name, methods in BUCKET_SUBRESOURCES.items() if all(op is None for op in methods.values())
)
