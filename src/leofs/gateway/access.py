"""Authorization: who may do what, from bucket and object ACLs (no IAM, no bucket policies).

The bucket owner may do everything. Anyone else needs a grant: a bucket's READ lists the bucket,
WRITE creates, overwrites and deletes objects, READ_ACP / WRITE_ACP read and change the bucket's
ACL, FULL_CONTROL all of these. Reading an object, or reading or changing its ACL, follows the
object's own ACL only, as in S3 (a public-read bucket does not make a private object readable).
The REST API follows LeoFS instead (``S3Request.bucket_acl_reads``): there a bucket's READ grant
reads its objects, and an object's own ACL can only widen that.
Grants name a user (by access key) or a group (all users, or all authenticated users).

A missing key answers 404 only to callers who may list the bucket; anyone else gets 403 for a
missing key as for an existing one, so that the answer does not tell whether the key exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from leofs.accounts import ALL_USERS, AUTHENTICATED_USERS, Bucket, Grant
from leofs.gateway.context import S3Request
from leofs.gateway.router import READ_OPS, WRITE_OPS, Op
from leofs.s3.errors import S3Error

#: operations any signed-in user may call without a bucket grant
_ACCOUNT_OPS = frozenset({Op.ListBuckets, Op.CreateBucket})
#: object-level reads that an object ACL alone may allow (checked by the handler)
OBJECT_ACL_READS = frozenset({Op.GetObject, Op.HeadObject, Op.GetObjectAttributes})
#: operations on one object that its own ACL governs, not the bucket's
_OBJECT_ACL_OPS = OBJECT_ACL_READS | {Op.GetObjectAcl, Op.PutObjectAcl}
_READ_ACP_OPS = frozenset({Op.GetBucketAcl, Op.GetObjectAcl})
_WRITE_ACP_OPS = frozenset({Op.PutBucketAcl, Op.PutObjectAcl})


def permitted(grants: Iterable[Grant], access_key: str | None, permission: str) -> bool:
    """Whether ``grants`` give ``permission`` to the caller."""
    for grant in grants:
        if grant.permission != permission and grant.permission != "FULL_CONTROL":
            continue
        if grant.grantee_type == "Group":
            if grant.grantee == ALL_USERS or (grant.grantee == AUTHENTICATED_USERS and access_key is not None):
                return True
        elif access_key is not None and grant.grantee == access_key:
            return True
    return False


def may_list(bucket: Bucket, caller: str | None) -> bool:
    """Whether the caller may list ``bucket`` (owner, or READ): then, and only then, a missing key
    is reported as missing."""
    if caller is not None and caller == bucket.owner:
        return True
    return permitted(bucket.grants, caller, "READ")


def authorize(req: S3Request) -> None:
    """Raise AccessDenied (or NoSuchBucket) unless the caller may perform ``req.op``.

    Object reads that the bucket does not allow are left to the handler, which checks the
    object's own ACL (``req.object_acl_check``).
    """
    op = req.op
    caller = req.access_key
    if op in _ACCOUNT_OPS:
        if caller is None:
            raise S3Error("AccessDenied")
        return
    bucket = req.bucket_record
    if bucket is None:
        if op in (Op.CreateBucket,):
            return
        raise S3Error("NoSuchBucket", BucketName=req.bucket or "")
    if caller is not None and caller == bucket.owner:
        return
    if op in READ_OPS:
        needed = "READ"
    elif op in WRITE_OPS:
        needed = "WRITE"
    elif op in _READ_ACP_OPS:
        needed = "READ_ACP"
    elif op in _WRITE_ACP_OPS:
        needed = "WRITE_ACP"
    else:  # bucket administration: owner only
        raise S3Error("AccessDenied")
    if op in OBJECT_ACL_READS and req.bucket_acl_reads and permitted(bucket.grants, caller, needed):
        return  # REST: the bucket's READ grant reads its objects (LeoFS), missing keys are plain 404s
    if op in _OBJECT_ACL_OPS:
        req.object_acl_check = needed  # the handler checks the object's ACL (or hides a missing key)
        return
    if permitted(bucket.grants, caller, needed):
        return
    raise S3Error("AccessDenied")
