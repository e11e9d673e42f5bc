"""Table tests of authorization: (operation, caller, bucket ACL, object ACL) -> allowed or denied.

A request passes ``authorize`` (the bucket's ACL) and then, for reads of one object and its ACL,
``check_object_acl`` (the object's own ACL), as the gateway does.
"""

from __future__ import annotations

from typing import Literal

import pytest
from aiohttp.test_utils import make_mocked_request

from leofs.accounts import ALL_USERS, AUTHENTICATED_USERS, Bucket, Grant, canned_grants
from leofs.gateway.access import authorize
from leofs.gateway.context import S3Request
from leofs.gateway.object_acl import check_object_acl
from leofs.gateway.objects import StoredObject
from leofs.gateway.records import ObjectMeta
from leofs.gateway.router import Op
from leofs.s3.auth import AuthResult
from leofs.s3.errors import S3Error
from leofs.storage.model import Entry

OWNER, OBJECT_OWNER, OTHER, FRIEND = "owner", "writer", "other", "friend"
ANON = None
Outcome = Literal["allowed", "denied"]
#: operations whose handler checks the object's own ACL (check_object_acl); writes follow the bucket's alone
OBJECT_ACL_OPS = {Op.GetObject, Op.HeadObject, Op.GetObjectAttributes, Op.GetObjectAcl, Op.PutObjectAcl}


def _bucket(acl: str, extra: list[Grant] | None = None) -> Bucket:
    grants = canned_grants(acl, OWNER) if acl != "custom" else [Grant("CanonicalUser", OWNER, "FULL_CONTROL")]
    return Bucket("b", OWNER, acl, grants + (extra or []), "us-east-1", 0.0)


def _object(acl: str, grants: list[tuple[str, str, str]] | None = None) -> StoredObject:
    entry = Entry(ns=0, key=b"b\x00k", clock=1, timestamp=1, tombstone=False, size=1, md5=b"\x00" * 16, meta=b"",
                  cindex=0, cnumber=0, csize=0, container=0, generation=0, data_offset=0, crc=0)
    return StoredObject(entry, ObjectMeta(size=1, etag="e", owner=OBJECT_OWNER, acl=acl, grants=grants), None)


def _decide(op: Op, caller: str | None, bucket: Bucket | None, obj: StoredObject | None, key: str | None = "k",
            ) -> Outcome | str:
    """What the gateway answers: allowed, denied (AccessDenied), or another error code."""
    req = S3Request(http=make_mocked_request("GET", "/"), request_id="r", method="GET", raw_path="/", raw_query="",
                    bucket="b", key=key, virtual_host=False, query={}, op=op,
                    auth=AuthResult(caller, 4 if caller else 0), bucket_record=bucket)
    try:
        authorize(req)
        if op in OBJECT_ACL_OPS:  # their handlers load the object and check its own ACL
            check_object_acl(req, obj)
    except S3Error as exc:
        return "denied" if exc.code == "AccessDenied" else exc.code
    return "allowed"


PRIVATE, PUBLIC_READ, PUBLIC_RW, AUTH_READ = "private", "public-read", "public-read-write", "authenticated-read"
FRIEND_READ = [Grant("CanonicalUser", FRIEND, "READ")]
FRIEND_WRITE = [Grant("CanonicalUser", FRIEND, "WRITE")]
FRIEND_READ_ACP = [Grant("CanonicalUser", FRIEND, "READ_ACP")]
FRIEND_WRITE_ACP = [Grant("CanonicalUser", FRIEND, "WRITE_ACP")]
FRIEND_FULL = [Grant("CanonicalUser", FRIEND, "FULL_CONTROL")]
OBJ_FRIEND_READ = [("CanonicalUser", OBJECT_OWNER, "FULL_CONTROL"), ("CanonicalUser", FRIEND, "READ")]
OBJ_FRIEND_READ_ACP = [("CanonicalUser", OBJECT_OWNER, "FULL_CONTROL"), ("CanonicalUser", FRIEND, "READ_ACP")]
OBJ_FRIEND_WRITE_ACP = [("CanonicalUser", OBJECT_OWNER, "FULL_CONTROL"), ("CanonicalUser", FRIEND, "WRITE_ACP")]

# bucket-level operations (no object): (op, caller, bucket canned ACL, extra bucket grants) -> outcome
TAGGING_OPS = (Op.GetBucketTagging, Op.PutBucketTagging, Op.DeleteBucketTagging, Op.GetObjectTagging,
               Op.PutObjectTagging, Op.DeleteObjectTagging)
BUCKET_TABLE: list[tuple[Op, str | None, str, list[Grant], Outcome]] = [
    # the owner may do everything
    *[(op, OWNER, PRIVATE, [], "allowed") for op in (
        Op.HeadBucket, Op.ListObjects, Op.ListObjectsV2, Op.ListObjectVersions, Op.ListMultipartUploads,
        Op.GetBucketLocation, Op.GetBucketVersioning, Op.GetBucketAcl, Op.PutBucketAcl, Op.DeleteBucket,
        Op.DeleteObjects, Op.PostObject, Op.PutBucketVersioning)],
    # a stranger nothing on a private bucket
    *[(op, caller, PRIVATE, [], "denied") for caller in (OTHER, ANON) for op in (
        Op.HeadBucket, Op.ListObjects, Op.ListObjectsV2, Op.GetBucketAcl, Op.PutBucketAcl, Op.DeleteBucket,
        Op.DeleteObjects, Op.GetBucketLocation)],
    # READ lists, nothing more
    *[(op, caller, PUBLIC_READ, [], "allowed") for caller in (OTHER, ANON) for op in (
        Op.HeadBucket, Op.ListObjects, Op.ListObjectsV2, Op.ListObjectVersions, Op.ListMultipartUploads,
        Op.GetBucketLocation, Op.GetBucketVersioning)],
    *[(op, OTHER, PUBLIC_READ, [], "denied") for op in (Op.DeleteObjects, Op.GetBucketAcl, Op.PutBucketAcl)],
    # versioning is the owner's: not even a WRITE grant changes it
    *[(Op.PutBucketVersioning, caller, PUBLIC_RW, [], "denied") for caller in (OTHER, ANON)],
    (Op.ListObjects, OTHER, AUTH_READ, [], "allowed"),
    (Op.ListObjects, ANON, AUTH_READ, [], "denied"),
    (Op.ListObjects, FRIEND, "custom", FRIEND_READ, "allowed"),
    (Op.ListObjects, OTHER, "custom", FRIEND_READ, "denied"),
    # WRITE: DeleteObjects; not listing
    (Op.DeleteObjects, OTHER, PUBLIC_RW, [], "allowed"),
    (Op.DeleteObjects, ANON, PUBLIC_RW, [], "allowed"),
    (Op.DeleteObjects, FRIEND, "custom", FRIEND_WRITE, "allowed"),
    (Op.ListObjects, FRIEND, "custom", FRIEND_WRITE, "denied"),
    # READ_ACP / WRITE_ACP govern the bucket's ACL
    (Op.GetBucketAcl, FRIEND, "custom", FRIEND_READ_ACP, "allowed"),
    (Op.PutBucketAcl, FRIEND, "custom", FRIEND_READ_ACP, "denied"),
    (Op.PutBucketAcl, FRIEND, "custom", FRIEND_WRITE_ACP, "allowed"),
    (Op.GetBucketAcl, FRIEND, "custom", FRIEND_WRITE_ACP, "denied"),
    (Op.GetBucketAcl, OTHER, PUBLIC_RW, [], "denied"),
    # FULL_CONTROL is every grant, but bucket administration stays the owner's
    *[(op, FRIEND, "custom", FRIEND_FULL, "allowed") for op in (
        Op.ListObjects, Op.DeleteObjects, Op.GetBucketAcl, Op.PutBucketAcl)],
    *[(Op.DeleteBucket, caller, acl, extra, "denied") for caller, acl, extra in (
        (FRIEND, "custom", FRIEND_FULL), (OTHER, PUBLIC_RW, []), (ANON, PUBLIC_RW, []))],
    (Op.PostObject, OTHER, PUBLIC_RW, [], "denied"),
    # tagging (bucket and object) is the bucket owner's, whatever the grants
    *[(op, OWNER, PRIVATE, [], "allowed") for op in TAGGING_OPS],
    *[(op, caller, acl, extra, "denied") for op in TAGGING_OPS for caller, acl, extra in (
        (FRIEND, "custom", FRIEND_FULL), (OTHER, PUBLIC_RW, []), (ANON, PUBLIC_RW, []))],
]


@pytest.mark.parametrize(("op", "caller", "acl", "extra", "outcome"), BUCKET_TABLE,
                         ids=[f"{op.value}-{c}-{a}{'+' + e[0].permission if e else ''}"
                              for op, c, a, e, _ in BUCKET_TABLE])
def test_bucket_operation(op: Op, caller: str | None, acl: str, extra: list[Grant], outcome: Outcome) -> None:
    assert _decide(op, caller, _bucket(acl, extra), None, key=None) == outcome


# object operations: (op, caller, bucket canned ACL, object canned ACL, object grants) -> outcome
OBJECT_TABLE: list[tuple[Op, str | None, str, str, list[tuple[str, str, str]] | None, Outcome]] = [
    # object reads follow the object's ACL only
    (Op.GetObject, OTHER, PUBLIC_READ, PRIVATE, None, "denied"),
    (Op.GetObject, ANON, PUBLIC_RW, PRIVATE, None, "denied"),
    (Op.GetObject, OTHER, PRIVATE, PUBLIC_READ, None, "allowed"),
    (Op.GetObject, ANON, PRIVATE, PUBLIC_READ, None, "allowed"),
    (Op.HeadObject, ANON, PRIVATE, PUBLIC_READ, None, "allowed"),
    (Op.GetObjectAttributes, ANON, PRIVATE, PUBLIC_READ, None, "allowed"),
    (Op.GetObject, OTHER, PRIVATE, AUTH_READ, None, "allowed"),
    (Op.GetObject, ANON, PRIVATE, AUTH_READ, None, "denied"),
    (Op.GetObject, FRIEND, PRIVATE, "custom", OBJ_FRIEND_READ, "allowed"),
    (Op.GetObject, OTHER, PRIVATE, "custom", OBJ_FRIEND_READ, "denied"),
    # the bucket owner reads every object; the object's owner reads its own in someone else's bucket
    (Op.GetObject, OWNER, PRIVATE, PRIVATE, None, "allowed"),
    (Op.GetObject, OBJECT_OWNER, PRIVATE, PRIVATE, None, "allowed"),
    (Op.GetObjectAcl, OBJECT_OWNER, PRIVATE, PRIVATE, None, "allowed"),
    (Op.PutObjectAcl, OBJECT_OWNER, PRIVATE, PRIVATE, None, "allowed"),
    # the object's ACL: READ_ACP reads it, WRITE_ACP changes it; a public-read object's ACL stays private
    (Op.GetObjectAcl, FRIEND, PRIVATE, "custom", OBJ_FRIEND_READ_ACP, "allowed"),
    (Op.PutObjectAcl, FRIEND, PRIVATE, "custom", OBJ_FRIEND_READ_ACP, "denied"),
    (Op.PutObjectAcl, FRIEND, PRIVATE, "custom", OBJ_FRIEND_WRITE_ACP, "allowed"),
    (Op.GetObjectAcl, FRIEND, PRIVATE, "custom", OBJ_FRIEND_READ, "denied"),
    (Op.GetObjectAcl, ANON, PUBLIC_RW, PUBLIC_READ, None, "denied"),
    (Op.PutObjectAcl, OTHER, PUBLIC_RW, PUBLIC_READ, None, "denied"),
    # writes follow the bucket's ACL (WRITE), whatever the object's
    *[(op, OTHER, PUBLIC_RW, PRIVATE, None, "allowed") for op in (
        Op.PutObject, Op.CopyObject, Op.DeleteObject, Op.CreateMultipartUpload, Op.UploadPart, Op.UploadPartCopy,
        Op.CompleteMultipartUpload, Op.AbortMultipartUpload)],
    *[(op, caller, PUBLIC_READ, PUBLIC_READ, None, "denied") for caller in (OTHER, ANON) for op in (
        Op.PutObject, Op.CopyObject, Op.DeleteObject, Op.CreateMultipartUpload, Op.UploadPart,
        Op.CompleteMultipartUpload, Op.AbortMultipartUpload)],
    # ListParts is a bucket READ
    (Op.ListParts, OTHER, PUBLIC_READ, PRIVATE, None, "allowed"),
    (Op.ListParts, OTHER, PRIVATE, PUBLIC_READ, None, "denied"),
]


@pytest.mark.parametrize(("op", "caller", "bucket_acl", "object_acl", "grants", "outcome"), OBJECT_TABLE,
                         ids=[f"{op.value}-{c}-{b}-{o}" for op, c, b, o, _, _ in OBJECT_TABLE])
def test_object_operation(op: Op, caller: str | None, bucket_acl: str, object_acl: str,
                          grants: list[tuple[str, str, str]] | None, outcome: Outcome) -> None:
    bucket = _bucket(bucket_acl)
    obj = _object(object_acl, grants)
    assert _decide(op, caller, bucket, obj) == outcome


@pytest.mark.parametrize(("caller", "bucket_acl", "answer"), [
    # a missing key is NoSuchKey only to those who may list the bucket; 403 to anyone else
    (OWNER, PRIVATE, "NoSuchKey"),
    (OTHER, PUBLIC_READ, "NoSuchKey"),
    (ANON, PUBLIC_READ, "NoSuchKey"),
    (OTHER, PRIVATE, "denied"),
    (ANON, PRIVATE, "denied"),
    (OTHER, AUTH_READ, "NoSuchKey"),
    (ANON, AUTH_READ, "denied"),
])
def test_missing_key(caller: str | None, bucket_acl: str, answer: str) -> None:
    assert _decide(Op.GetObject, caller, _bucket(bucket_acl), None) == answer


@pytest.mark.parametrize(("op", "caller", "answer"), [
    (Op.ListBuckets, OTHER, "allowed"),
    (Op.ListBuckets, ANON, "denied"),
    (Op.CreateBucket, OTHER, "allowed"),
    (Op.CreateBucket, ANON, "denied"),
    (Op.ListObjects, OTHER, "NoSuchBucket"),
    (Op.PutObject, ANON, "NoSuchBucket"),
    (Op.GetObject, OTHER, "NoSuchBucket"),
])
def test_without_a_bucket(op: Op, caller: str | None, answer: str) -> None:
    assert _decide(op, caller, None, None, key=None if op in (Op.ListBuckets, Op.CreateBucket) else "k") == answer


def test_the_tables_cover_every_operation() -> None:
    covered = {row[0] for row in BUCKET_TABLE} | {row[0] for row in OBJECT_TABLE} | {Op.ListBuckets, Op.CreateBucket}
    assert covered == set(Op)


def test_group_grants() -> None:
    assert ALL_USERS in {g.grantee for g in canned_grants(PUBLIC_READ, OWNER)}
    assert AUTHENTICATED_USERS in {g.grantee for g in canned_grants(AUTH_READ, OWNER)}
