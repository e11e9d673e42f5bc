"""Object ACLs: the grants an object's own ACL gives, and the check of a request against them."""

from __future__ import annotations

from leofs.accounts import Grant, canned_grants
from leofs.gateway.access import may_list, permitted
from leofs.gateway.context import S3Request
from leofs.gateway.objects import StoredObject, raise_for_missing
from leofs.s3.errors import S3Error


def object_grants(obj: StoredObject) -> list[Grant]:
    """The grants of an object's ACL (its owner always has FULL_CONTROL)."""
    if obj.meta.grants is not None:
        return [Grant(*grant) for grant in obj.meta.grants]
    return canned_grants(obj.meta.acl, obj.meta.owner)


def stored_grants(grants: list[Grant]) -> list[tuple[str, str, str]]:
    """Grants as ``ObjectMeta.grants`` stores them (the record format keeps plain triples)."""
    return [(g.grantee_type, g.grantee, g.permission) for g in grants]


def check_object_acl(req: S3Request, obj: StoredObject | None, grants: list[Grant] | None = None) -> StoredObject:
    """``obj`` if the caller may do ``req.op`` on it: for anyone but the bucket owner, the object's
    own ACL must allow it. A missing object is NoSuchKey only for callers who may list the bucket,
    AccessDenied for anyone else (no key-existence oracle). ``grants``: ``object_grants(obj)`` when
    the caller has them already."""
    if obj is None:
        if req.object_acl_check is not None and (req.bucket_record is None
                                                 or not may_list(req.bucket_record, req.access_key)):
            raise S3Error("AccessDenied")
        return raise_for_missing(obj, req.key or "")
    if req.object_acl_check is None:
        return obj
    if req.access_key is not None and req.access_key == obj.meta.owner:
        return obj
    if not permitted(object_grants(obj) if grants is None else grants, req.access_key, req.object_acl_check):
        raise S3Error("AccessDenied")
    return obj
