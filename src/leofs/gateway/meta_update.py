"""Changing an object's metadata in place (its tag set): a compare-and-set on its record.

The record is written again with the same data (inline body or manifest) and timestamp, with the
clock of the version read plus one, under ``expect`` = that clock, so a PUT, copy, Complete or DELETE that lands in
between is never clobbered nor resurrected: the change is made again on what is there now, or
answers NoSuchKey when the object is gone. No chunk is freed: the new record points at the same ones.

A version of a versioned bucket (``?versionId``, or a current object that carries a version id) is
changed in its NS_VERSION entry and, when it is current, in the NS_OBJECT record
(:func:`leofs.gateway.versions.rewrite_meta`, as for an ACL change), each with its clock plus one.
"""

from __future__ import annotations

from collections.abc import Callable

from leofs.gateway.backend import VersionGone, WriteConflict
from leofs.gateway.context import S3Request, Services
from leofs.gateway.keys import NS_OBJECT, object_key
from leofs.gateway.object_acl import check_object_acl
from leofs.gateway.objects import StoredObject, load_object
from leofs.gateway.records import ObjectMeta, meta_encoder
from leofs.gateway.versions import requested_object, rewrite_meta
from leofs.s3.errors import S3Error

_ATTEMPTS = 10


async def current_object(gw: Services, req: S3Request) -> StoredObject:
    """The object a request addresses (``?versionId``, else the current version, in the bucket's
    current generation; NoSuchKey when absent). A delete marker has no metadata to read or change:
    405 MethodNotAllowed, as AWS answers."""
    assert req.key is not None
    if req.query.get("versionId") is not None:
        obj = await requested_object(req, gw.backend)
    else:
        obj = check_object_acl(
            req, await load_object(gw.backend, req.bucket or "", req.key, generation=req.require_bucket().created)
        )
    if obj.meta.delete_marker:
        raise S3Error("MethodNotAllowed")
    return obj


async def update_meta(gw: Services, req: S3Request, change: Callable[[ObjectMeta], None]) -> StoredObject:
    """Apply ``change`` to the metadata of the object ``req`` addresses and store it, compare-and-set
    on the version read (retried on a concurrent write). Answers the object as it was changed."""
    assert req.key is not None
    key = object_key(req.bucket or "", req.key)
    for _ in range(_ATTEMPTS):
        obj = await current_object(gw, req)
        if obj.meta.version_id is not None or req.query.get("versionId") is not None:
            change(obj.meta)
            await rewrite_meta(gw.backend, req.bucket or "", req.key, obj, obj.meta)
            return obj
        change(obj.meta)
        entry = obj.entry
        try:
            data = await gw.backend.read(entry)
            await gw.backend.put(
                NS_OBJECT,
                key,
                data,
                meta=meta_encoder.encode(obj.meta),
                cnumber=entry.cnumber,
                csize=entry.csize,
                md5=entry.md5,
                # clock + 1, not a new clock: should the write be judged on a stale copy (a cluster
                # gateway retrying on the next replica after a timeout), any later write still wins
                clock=entry.clock + 1,
                timestamp=entry.timestamp,
                expect=entry.clock,
            )
        except (WriteConflict, VersionGone):  # written or compacted meanwhile: again, on what is there now
            continue
        return obj
    raise S3Error("ConditionalRequestConflict")
