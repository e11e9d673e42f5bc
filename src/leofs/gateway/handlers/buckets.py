"""Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation
(versioning: ``handlers.versioning``)."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from leofs.accounts import AlreadyExists
from leofs.gateway import fence
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.handlers.acl import header_grants
from leofs.gateway.handlers.headers import canned_acl
from leofs.gateway.owners import owner_of
from leofs.gateway.uploads import abort_all
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_bucket_name
from leofs.s3.numeric import bounded
from leofs.s3.responses import XML_DECL, XMLNS, document, elem, iso8601
from leofs.s3.xmlparse import parse_create_bucket


async def list_buckets(gw: Services, req: S3Request) -> web.StreamResponse:
    """The caller's buckets by name; ``prefix`` and ``bucket-region`` filter them, ``max-buckets``
    pages them (``ContinuationToken`` names where the next page starts)."""
    assert req.access_key is not None
    q = req.query
    prefix, region = q.get("prefix", ""), q.get("bucket-region", "")
    paged = "max-buckets" in q
    limit = bounded(q["max-buckets"], "max-buckets", 1, MAX_BUCKETS_PAGE) if paged else None
    after = _untoken_bucket(q["continuation-token"]) if q.get("continuation-token") else ""
    chosen = [b for b in gw.control.buckets(req.access_key)
              if b.name.startswith(prefix) and (not region or b.region == region) and b.name > after]
    more = limit is not None and len(chosen) > limit
    if limit is not None:
        chosen = chosen[:limit]
    items = "".join(
        f"<Bucket>{elem('Name', b.name)}{elem('CreationDate', iso8601(int(b.created * 1e6)))}"
        f"{elem('BucketRegion', b.region)}</Bucket>"
        for b in chosen
    )
    body = f"{owner_of(gw, req.access_key)}<Buckets>{items}</Buckets>"
    if more:
        body += elem("ContinuationToken", base64.urlsafe_b64encode(chosen[-1].name.encode()).decode())
    if "prefix" in q:
        body += elem("Prefix", prefix)
    return web.Response(body=document("ListAllMyBucketsResult", body), content_type="application/xml")


#: the most buckets one ListBuckets page holds (AWS's limit for max-buckets)
MAX_BUCKETS_PAGE = 10000


def _untoken_bucket(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token") from None


async def create_bucket(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.bucket is not None and req.access_key is not None
    validate_bucket_name(req.bucket)
    acl = canned_acl(req.headers)
    grants = header_grants(gw, req)  # x-amz-grant-*: every grantee kind, stored as the bucket's ACL
    if grants is not None:
        acl = "custom"
    body = await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body)
    location = parse_create_bucket(body)
    region = location or gw.config.region
    if location == "EU":
        region = "eu-west-1"
    try:
        await gw.control.create_bucket(req.bucket, req.access_key, acl=acl, region=region, grants=grants)
    except AlreadyExists as err:
        raise S3Error("BucketAlreadyOwnedByYou" if err.code == "owned" else "BucketAlreadyExists",
                      BucketName=req.bucket) from None
    return web.Response(status=200, headers={"Location": f"/{req.bucket}"})


async def delete_bucket(gw: Services, req: S3Request) -> web.StreamResponse:
    # a bucket that holds only uploads in progress is deleted, its uploads aborted (as AWS does)
    await fence.delete_bucket(gw, req.require_bucket(), clear_uploads=abort_all)
    return web.Response(status=204)


async def head_bucket(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    return web.Response(status=200, headers={"x-amz-bucket-region": bucket.region})


async def get_bucket_location(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    region = "" if bucket.region == "us-east-1" else bucket.region
    body = f'{XML_DECL}<LocationConstraint xmlns="{XMLNS}">{elem("x", region)[3:-4]}</LocationConstraint>'
    return web.Response(body=body.encode(), content_type="application/xml")

