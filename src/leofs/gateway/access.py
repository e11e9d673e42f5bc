"""Authorization: who may do what, from bucket and object ACLs (no IAM, no bucket policies).

The bucket owner may do everything. Anyone else needs a grant: READ lists the bucket and reads
its objects, WRITE creates, overwrites and deletes objects, READ_ACP / WRITE_ACP read and change
ACLs, FULL_CONTROL all of these. Grants name a user (by access key) or a group (all users, or all
authenticated users). An object's own ACL can additionally allow reading that object.
"""

from __future__ import annotations

from collections.abc import Iterable

from leofs.gateway.context import S3Request
from leofs.gateway.router import READ_OPS, WRITE_OPS, Op
from leofs.manager.store import ALL_USERS, AUTHENTICATED_USERS
from leofs.s3.errors import S3Error

#: operations any signed-in user may call without a bucket grant
_ACCOUNT_OPS = frozenset({Op.ListBuckets, Op.CreateBucket})
#: object-level reads that an object ACL alone may allow (checked by the handler)
OBJECT_ACL_READS = frozenset({Op.GetObject, Op.HeadObject, Op.GetObjectAttributes})
_READ_ACP_OPS = frozenset({Op.GetBucketAcl, Op.GetObjectAcl})
_WRITE_ACP_OPS = frozenset({Op.PutBucketAcl, Op.PutObjectAcl})


def permitted(grants: Iterable[tuple[str, str, str]], access_key: str | None, permission: str) -> bool:
    """Whether ``grants`` (grantee_type, grantee, permission) give ``permission`` to the caller."""
    for grantee_type, grantee, granted in grants:
        if granted != permission and granted != "FULL_CONTROL":
            continue
        if grantee_type == "Group":
            if grantee == ALL_USERS or (grantee == AUTHENTICATED_USERS and access_key is not None):
                return True
        elif access_key is not None and grantee == access_key:
            return True
    return False


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
    grants = [(g.grantee_type, g.grantee, g.permission) for g in bucket.grants]
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
    if permitted(grants, caller, needed):
        return
    if op in OBJECT_ACL_READS or op in (Op.GetObjectAcl, Op.PutObjectAcl):
        req.object_acl_check = needed
        return
    raise S3Error("AccessDenied")
