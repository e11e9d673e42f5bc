"""Object tagging (Get/Put/DeleteObjectTagging) and bucket tagging (Get/Put/DeleteBucketTagging).

An object's tag set lives in its record (``ObjectMeta.tags``), so it replicates and is repaired
with the object; a change is a compare-and-set on the record (:mod:`leofs.gateway.meta_update`).
A bucket's tag set is kept by the manager with the bucket, like its ACL.
"""

from __future__ import annotations

from aiohttp import web

from leofs.accounts import NotFound
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.meta_update import current_object, update_meta
from leofs.gateway.records import ObjectMeta
from leofs.gateway.versions import version_headers
from leofs.s3.errors import S3Error
from leofs.s3.tagging import MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, tagging_document, tags_from_xml


async def get_object_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    obj = await current_object(gw, req)
    return web.Response(body=tagging_document(obj.meta.tags or []), content_type="application/xml",
                        headers=version_headers(req.bucket_record, obj.meta))


async def put_object_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    req.require_bucket()
    body = await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body)
    tags = tags_from_xml(body, limit=MAX_OBJECT_TAGS)

    def change(meta: ObjectMeta) -> None:
        meta.tags = tags or None

    obj = await update_meta(gw, req, change)
    return web.Response(status=200, headers=version_headers(req.bucket_record, obj.meta))


async def delete_object_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    req.require_bucket()

    def change(meta: ObjectMeta) -> None:
        meta.tags = None

    obj = await update_meta(gw, req, change)
    return web.Response(status=204, headers=version_headers(req.bucket_record, obj.meta))


async def get_bucket_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    if not bucket.tags:
        raise S3Error("NoSuchTagSet", BucketName=bucket.name)
    return web.Response(body=tagging_document([(k, v) for k, v in bucket.tags]), content_type="application/xml")


async def put_bucket_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    body = await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body)
    tags = tags_from_xml(body, limit=MAX_BUCKET_TAGS)
    await _set_bucket_tags(gw, bucket.name, tags)
    return web.Response(status=204)


async def delete_bucket_tagging(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    await _set_bucket_tags(gw, bucket.name, [])
    return web.Response(status=204)


async def _set_bucket_tags(gw: Services, name: str, tags: list[tuple[str, str]]) -> None:
    try:
        await gw.control.set_bucket_tags(name, tags)
    except NotFound:  # deleted meanwhile
        raise S3Error("NoSuchBucket", BucketName=name) from None
