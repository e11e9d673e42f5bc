"""Table tests of the router (as Garage has for its own): request -> bucket, key, operation."""

from __future__ import annotations

import pytest

from leofs.gateway.router import (
    _UNSUPPORTED_BUCKET_SUBRESOURCES,
    BUCKET_SUBRESOURCES,
    OBJECT_SUBRESOURCES,
    Op,
    resolve_operation,
    resolve_target,
)
from leofs.s3.errors import S3Error

ENDPOINTS = ["s3.example.com", "localhost"]
COPY = {"x-amz-copy-source": "/src/key"}

# (method, path, query, headers) -> operation; path style on an IP host
OPERATIONS: list[tuple[str, str, str, dict[str, str], Op]] = [
    ("GET", "/", "", {}, Op.ListBuckets),
    ("HEAD", "/", "", {}, Op.ListBuckets),
    # bucket
    ("PUT", "/b", "", {}, Op.CreateBucket),
    ("PUT", "/b/", "", {}, Op.CreateBucket),
    ("DELETE", "/b", "", {}, Op.DeleteBucket),
    ("HEAD", "/b", "", {}, Op.HeadBucket),
    ("GET", "/b", "", {}, Op.ListObjects),
    ("GET", "/b", "prefix=a&delimiter=/&marker=m", {}, Op.ListObjects),
    ("GET", "/b", "list-type=2", {}, Op.ListObjectsV2),
    ("GET", "/b", "list-type=2&continuation-token=t&start-after=a", {}, Op.ListObjectsV2),
    ("GET", "/b", "list-type=1", {}, Op.ListObjects),
    ("GET", "/b", "location", {}, Op.GetBucketLocation),
    ("GET", "/b", "acl", {}, Op.GetBucketAcl),
    ("PUT", "/b", "acl", {}, Op.PutBucketAcl),
    ("GET", "/b", "versioning", {}, Op.GetBucketVersioning),
    ("PUT", "/b", "versioning", {}, Op.PutBucketVersioning),
    ("GET", "/b", "versions", {}, Op.ListObjectVersions),
    ("GET", "/b", "uploads", {}, Op.ListMultipartUploads),
    ("POST", "/b", "delete", {}, Op.DeleteObjects),
    ("POST", "/b", "", {"content-type": "multipart/form-data; boundary=x"}, Op.PostObject),
    # the first subresource in the router's order wins
    ("GET", "/b", "location&acl", {}, Op.GetBucketLocation),
    ("GET", "/b", "acl&list-type=2", {}, Op.GetBucketAcl),
    # object
    ("PUT", "/b/k", "", {}, Op.PutObject),
    ("PUT", "/b/k", "", COPY, Op.CopyObject),
    ("GET", "/b/k", "", {}, Op.GetObject),
    ("GET", "/b/k", "partNumber=1", {}, Op.GetObject),
    ("GET", "/b/k", "response-content-type=text/plain", {}, Op.GetObject),
    ("HEAD", "/b/k", "", {}, Op.HeadObject),
    ("HEAD", "/b/k", "partNumber=2", {}, Op.HeadObject),
    ("DELETE", "/b/k", "", {}, Op.DeleteObject),
    ("GET", "/b/k", "acl", {}, Op.GetObjectAcl),
    ("PUT", "/b/k", "acl", {}, Op.PutObjectAcl),
    ("GET", "/b/k", "attributes", {}, Op.GetObjectAttributes),
    ("GET", "/b/k", "tagging", {}, Op.GetObjectTagging),
    ("PUT", "/b/k", "tagging", {}, Op.PutObjectTagging),
    ("DELETE", "/b/k", "tagging", {}, Op.DeleteObjectTagging),
    ("GET", "/b", "tagging", {}, Op.GetBucketTagging),
    ("PUT", "/b", "tagging", {}, Op.PutBucketTagging),
    ("DELETE", "/b", "tagging", {}, Op.DeleteBucketTagging),
    # multipart
    ("POST", "/b/k", "uploads", {}, Op.CreateMultipartUpload),
    ("PUT", "/b/k", "partNumber=1&uploadId=u", {}, Op.UploadPart),
    ("PUT", "/b/k", "partNumber=1&uploadId=u", COPY, Op.UploadPartCopy),
    ("PUT", "/b/k", "uploadId=u", {}, Op.UploadPart),  # partNumber missing: the handler refuses it
    ("POST", "/b/k", "uploadId=u", {}, Op.CompleteMultipartUpload),
    ("DELETE", "/b/k", "uploadId=u", {}, Op.AbortMultipartUpload),
    ("GET", "/b/k", "uploadId=u", {}, Op.ListParts),
    ("GET", "/b/k", "uploadId=u&acl", {}, Op.ListParts),
    # keys that look like subresources are keys
    ("GET", "/b/acl", "", {}, Op.GetObject),
    ("PUT", "/b/uploads", "", {}, Op.PutObject),
]


def _query(raw: str) -> dict[str, str]:
    return dict(p.partition("=")[::2] for p in raw.split("&") if p)


def _operation(method: str, path: str, query: str, headers: dict[str, str], host: str = "127.0.0.1:8080") -> Op:
    bucket, key, _ = resolve_target(host, path, ENDPOINTS)
    return resolve_operation(method, bucket, key, _query(query), headers)


@pytest.mark.parametrize(("method", "path", "query", "headers", "op"), OPERATIONS,
                         ids=[f"{m} {p}?{q}{' copy' if h == COPY else ''}" for m, p, q, h, _ in OPERATIONS])
def test_operation(method: str, path: str, query: str, headers: dict[str, str], op: Op) -> None:
    assert _operation(method, path, query, headers) is op


def test_the_table_covers_every_operation() -> None:
    assert {op for *_, op in OPERATIONS} == set(Op)


@pytest.mark.parametrize("host", ["b.s3.example.com", "b.localhost:9000"])
def test_virtual_host_requests_name_the_same_operations(host: str) -> None:
    for method, path, query, headers, op in OPERATIONS:
        if path.startswith("/b"):
            assert _operation(method, path[2:] or "/", query, headers, host=host) is op, (method, path, query)


# (method, path, query) -> the error code: no such operation, or a subresource not implemented
REFUSED: list[tuple[str, str, str, str]] = [
    ("PUT", "/", "", "MethodNotAllowed"),
    ("POST", "/", "", "MethodNotAllowed"),
    ("DELETE", "/", "", "MethodNotAllowed"),
    ("PATCH", "/b", "", "MethodNotAllowed"),
    ("OPTIONS", "/b", "", "MethodNotAllowed"),
    ("PATCH", "/b/k", "", "MethodNotAllowed"),
    ("POST", "/b/k", "", "MethodNotAllowed"),
    ("POST", "/b/k", "acl", "MethodNotAllowed"),
    ("DELETE", "/b", "acl", "MethodNotAllowed"),
    ("PUT", "/b", "location", "MethodNotAllowed"),
    ("PUT", "/b/k", "attributes", "MethodNotAllowed"),
    # every subresource of the S3 API reference that is not built: 501, never a plain GET/PUT/DELETE
    *[(method, "/b", sub, "NotImplemented") for sub, methods in BUCKET_SUBRESOURCES.items()
      for method, op in methods.items() if op is None],
    *[(method, "/b/k", sub, "NotImplemented") for sub, methods in OBJECT_SUBRESOURCES.items()
      for method, op in methods.items() if op is None],
]


@pytest.mark.parametrize(("method", "path", "query", "code"), REFUSED,
                         ids=[f"{m} {p}?{q}" for m, p, q, _ in REFUSED])
def test_refused(method: str, path: str, query: str, code: str) -> None:
    with pytest.raises(S3Error) as err:
        _operation(method, path, query, {})
    assert err.value.code == code
    if code == "NotImplemented":
        assert f"'{query}'" in err.value.message


def test_unsupported_subresources_are_named() -> None:
    assert {"policy", "lifecycle", "cors", "website", "object-lock"} <= set(_UNSUPPORTED_BUCKET_SUBRESOURCES)
    assert {"retention", "legal-hold", "torrent", "restore", "select"} <= set(OBJECT_SUBRESOURCES)


# (host, raw path) -> (bucket, key, virtual host); endpoints s3.example.com and localhost
TARGETS: list[tuple[str, str, tuple[str | None, str | None, bool]]] = [
    # path style: an IP, a known endpoint, or a host without a dot
    ("127.0.0.1:8080", "/", (None, None, False)),
    ("127.0.0.1:8080", "/b", ("b", None, False)),
    ("127.0.0.1:8080", "/b/", ("b", None, False)),
    ("127.0.0.1", "/b/k", ("b", "k", False)),
    ("127.0.0.1:8080", "/b/a/b/c", ("b", "a/b/c", False)),
    ("127.0.0.1:8080", "/b/a//b/", ("b", "a//b/", False)),
    ("127.0.0.1:8080", "/b/a%20b%2Fc", ("b", "a b/c", False)),
    ("127.0.0.1:8080", "/b/%E2%82%AC", ("b", "\u20ac", False)),
    ("127.0.0.1:8080", "/b%2Dx/k", ("b-x", "k", False)),
    ("127.0.0.1:8080", "/%FF/k", ("\ufffd", "k", False)),  # not UTF-8: replaced, then no valid bucket name
    ("[::1]:8080", "/b/k", ("b", "k", False)),
    ("[::1]", "/b/k", ("b", "k", False)),
    ("s3.example.com", "/b/k", ("b", "k", False)),
    ("s3.example.com:9000", "/b/k", ("b", "k", False)),
    ("S3.Example.COM", "/b/k", ("b", "k", False)),
    ("localhost:8080", "/b/k", ("b", "k", False)),
    ("storage", "/b/k", ("b", "k", False)),
    ("", "/b/k", ("b", "k", False)),
    # virtual host: <bucket>.<endpoint>
    ("b.s3.example.com", "/", ("b", None, True)),
    ("b.s3.example.com", "/k", ("b", "k", True)),
    ("b.s3.example.com:9000", "/a/b%20c", ("b", "a/b c", True)),
    ("My.Bucket.s3.example.com", "/k", ("my.bucket", "k", True)),
    ("b.localhost", "/k/", ("b", "k/", True)),
    # CNAME: any other host with a dot names the bucket, unless the path starts with it
    ("photos.example.org", "/cat.jpg", ("photos.example.org", "cat.jpg", True)),
    ("photos.example.org:80", "/", ("photos.example.org", None, True)),
    ("photos.example.org", "/photos.example.org/cat.jpg", ("photos.example.org", "cat.jpg", False)),
]


@pytest.mark.parametrize(("host", "path", "target"), TARGETS, ids=[f"{h} {p}" for h, p, _ in TARGETS])
def test_target(host: str, path: str, target: tuple[str | None, str | None, bool]) -> None:
    assert resolve_target(host, path, ENDPOINTS) == target


@pytest.mark.parametrize(("host", "path", "code"), [
    ("127.0.0.1", "b/k", "InvalidURI"),
    ("127.0.0.1", "", "InvalidURI"),
    ("127.0.0.1", "*", "InvalidURI"),
    ("\udcff.s3.example.com", "/k", "InvalidBucketName"),
])
def test_target_refused(host: str, path: str, code: str) -> None:
    with pytest.raises(S3Error) as err:
        resolve_target(host, path, ENDPOINTS)
    assert err.value.code == code
