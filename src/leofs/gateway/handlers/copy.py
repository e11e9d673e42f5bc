"""CopyObject, and the copy source handling UploadPartCopy shares with it.

Copies happen inside the server, chunk by chunk: no bytes travel through the client, and memory
stays at about one chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import unquote

from aiohttp import web

from leofs.gateway.access import may_list, permitted
from leofs.gateway.blobs import ChunkWriter
from leofs.gateway.context import S3Request, Services
from leofs.gateway.expected_owner import SOURCE_EXPECTED_OWNER, check_owner
from leofs.gateway.fence import fenced, stamp_generation, undo_write
from leofs.gateway.grace import free_later
from leofs.gateway.handlers.acl import apply_header_grants
from leofs.gateway.handlers.headers import canned_acl, checksum_headers, meta_from_headers
from leofs.gateway.keys import NS_CHUNK, chunk_key
from leofs.gateway.object_acl import object_grants
from leofs.gateway.objects import (
    StoredObject,
    extents,
    forget_later,
    load_object,
    replaced_object,
    write_object,
)
from leofs.gateway.records import Blob, Manifest, ObjectMeta
from leofs.gateway.versions import is_versioned, load_version, put_version, undo_version, version_headers
from leofs.s3.conditions import check_copy_source_conditions
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_key
from leofs.s3.responses import document, elem, iso8601, quote_etag

MAX_COPY_SOURCE = 5 * 1024**3


async def copy_source(gw: Services, req: S3Request) -> tuple[str, str, StoredObject]:
    """The (bucket, key, object) named by x-amz-copy-source, after access and condition checks."""
    raw = req.headers["x-amz-copy-source"]
    source, _, params = raw.partition("?")
    source = unquote(source).lstrip("/")
    version = dict(p.partition("=")[::2] for p in params.split("&")).get("versionId") if params else None
    bucket_name, sep, key = source.partition("/")
    if not sep or not key or not bucket_name:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                      ArgumentName="x-amz-copy-source", ArgumentValue=raw)
    bucket = gw.control.bucket(bucket_name)
    if bucket is None:
        raise S3Error("NoSuchBucket", BucketName=bucket_name)
    check_owner(gw, bucket, req.headers.get(SOURCE_EXPECTED_OWNER))
    caller = req.access_key
    if version is not None:
        obj = await load_version(gw.backend, bucket_name, key, unquote(version), generation=bucket.created)
        if obj is None:
            raise (S3Error("NoSuchVersion", Key=key, VersionId=unquote(version)) if may_list(bucket, caller)
                   else S3Error("AccessDenied"))
        if obj.meta.delete_marker:
            raise S3Error("InvalidRequest", "The source of a copy request may not specifically refer to a delete "
                          "marker by version id.")
    else:
        obj = await load_object(gw.backend, bucket_name, key, generation=bucket.created)
    # as for GetObject: the object's ACL decides; a missing key is reported only to who may list
    if obj is None:
        raise S3Error("NoSuchKey", Key=key) if may_list(bucket, caller) else S3Error("AccessDenied")
    owner = caller is not None and caller in (bucket.owner, obj.meta.owner)
    if not owner and not permitted(object_grants(obj), caller, "READ"):
        raise S3Error("AccessDenied")
    check_copy_source_conditions(req.headers, obj.quoted_etag, obj.last_modified / 1e6)
    return bucket_name, key, obj


async def copy_range(
    gw: Services, src_bucket: str, src_key: str, obj: StoredObject, start: int, end: int,
    dst_bucket: str, dst_key: str, *, as_blob: bool,
) -> tuple[bytes | Blob, str]:
    """Copy bytes ``start..end`` of an object into new storage: inline bytes, or a new blob.

    Returns the copy and the hex MD5 of the copied bytes.
    """
    md5 = hashlib.md5()
    size = end - start + 1
    if not as_blob and size <= gw.config.chunk_threshold:
        data = await _read_range(gw, src_bucket, src_key, obj, start, end)
        md5.update(data)
        return data, md5.hexdigest()
    writer = ChunkWriter(gw.backend, dst_bucket, dst_key, gw.config.chunk_size, gw.config.chunk_window,
                         gw.config.chunk_budget)
    pending = b""
    try:
        async for data in source_pieces(gw, src_bucket, src_key, obj, start, end):
            md5.update(data)
            pending += data
            while len(pending) >= gw.config.chunk_size:
                await writer.add(pending[: gw.config.chunk_size])
                pending = pending[gw.config.chunk_size:]
        if pending:
            await writer.add(pending)
        return await writer.finish(md5.hexdigest()), md5.hexdigest()
    except BaseException:
        await writer.abort()
        raise


async def source_pieces(
    gw: Services, bucket: str, key: str, obj: StoredObject, start: int, end: int
) -> AsyncIterator[bytes]:
    """Bytes ``start..end`` of an object, at most one chunk at a time."""
    if obj.manifest is None:
        step = gw.config.chunk_size
        for offset in range(start, end + 1, step):
            yield await gw.backend.read(obj.entry, offset, min(step, end - offset + 1))
        return
    for extent in extents(obj.manifest, start, end):
        entry = await gw.backend.head(NS_CHUNK, chunk_key(bucket, key, extent.blob.blob_id, extent.index))
        if entry is None:
            raise S3Error("InternalError", "A chunk of the source object is missing.")
        yield await gw.backend.read(entry, extent.offset, extent.length)


async def _read_range(gw: Services, bucket: str, key: str, obj: StoredObject, start: int, end: int) -> bytes:
    return b"".join([piece async for piece in source_pieces(gw, bucket, key, obj, start, end)])


async def copy_object(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    req.require_bucket()
    validate_key(req.key)
    src_bucket, src_key, src = await copy_source(gw, req)
    if src.size > MAX_COPY_SOURCE:
        raise S3Error("InvalidRequest", "The specified copy source is larger than the maximum allowable size "
                      f"for a copy source: {MAX_COPY_SOURCE}")
    directive = req.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.", ArgumentName="x-amz-metadata-directive")
    # copying a version by its id onto its own key is how a version is restored
    same = (src_bucket, src_key) == (req.bucket, req.key) and "versionId=" not in req.headers["x-amz-copy-source"]
    if same and directive == "COPY" and not any(
        h in req.headers for h in ("x-amz-storage-class", "x-amz-website-redirect-location",
                                   "x-amz-server-side-encryption")
    ):
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                      "itself without changing the object's metadata, storage class, website redirect location "
                      "or encryption attributes.")
    meta = meta_from_headers(req, size=src.size, etag=src.etag)
    if directive == "COPY":
        for field in ("content_type", "content_encoding", "content_disposition", "content_language",
                      "cache_control", "expires", "user_meta"):
            setattr(meta, field, getattr(src.meta, field))
    tagging = req.headers.get("x-amz-tagging-directive", "COPY").upper()
    if tagging not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown tagging directive.", ArgumentName="x-amz-tagging-directive")
    if tagging == "COPY":
        meta.tags = src.meta.tags
    meta.owner = req.access_key or ""
    meta.acl = canned_acl(req.headers)
    apply_header_grants(gw, req, meta)
    meta.checksum_algorithm, meta.checksum_value = src.meta.checksum_algorithm, src.meta.checksum_value
    meta.checksum_type = src.meta.checksum_type
    meta.parts_count = src.meta.parts_count
    generation = stamp_generation(meta, req.bucket_record)
    blobs: list[Blob] = []
    versioned = is_versioned(req.bucket_record)
    source_version = version_headers(gw.control.bucket(src_bucket), src.meta).get("x-amz-version-id")
    if src.manifest is None:
        data = await gw.backend.read(src.entry)
        if versioned:
            return await _copied_version(gw, req, meta, data, source_version)
        entry, replaced = await write_object(gw.backend, req.bucket or "", req.key, meta, data)
    else:
        position = 0
        for blob in src.manifest.blobs:
            copied, _ = await copy_range(gw, src_bucket, src_key, src, position, position + blob.size - 1,
                                         req.bucket or "", req.key, as_blob=True)
            assert isinstance(copied, Blob)
            blobs.append(Blob(copied.blob_id, copied.size, copied.chunk_size, copied.count, blob.md5,
                              blob.checksum, blob.checksum_algorithm, blob.last_modified))
            position += blob.size
        if versioned:
            return await _copied_version(gw, req, meta, Manifest(blobs), source_version)
        entry, replaced = await write_object(gw.backend, req.bucket or "", req.key, meta, Manifest(blobs))
    if await fenced(gw, req.bucket or "", generation):  # the bucket was deleted meanwhile
        await undo_write(gw, req.bucket or "", req.key, entry, replaced, blobs)
        raise S3Error("NoSuchBucket", BucketName=req.bucket or "")
    old = await replaced_object(gw.backend, replaced)
    # the copy has blobs of its own, so the replaced version's chunks can always go
    forget_later(gw, req.bucket or "", req.key, old)
    return _copy_result(meta, entry.timestamp, {} if source_version is None else
                        {"x-amz-copy-source-version-id": source_version})


async def _copied_version(gw: Services, req: S3Request, meta: ObjectMeta, body: bytes | Manifest,
                          source_version: str | None) -> web.StreamResponse:
    """The copy as a new version of a versioned bucket's key."""
    bucket, key = req.require_bucket(), req.key or ""
    try:
        entry = await put_version(gw, bucket, key, meta, body)
    except BaseException:
        if isinstance(body, Manifest):
            free_later(gw, bucket.name, key, body.blobs)
        raise
    assert meta.version_id is not None
    if await fenced(gw, bucket.name, meta.generation):  # the bucket was deleted meanwhile
        await undo_version(gw, bucket.name, key, meta.version_id)
        raise S3Error("NoSuchBucket", BucketName=bucket.name)
    headers = version_headers(bucket, meta)
    if source_version is not None:
        headers["x-amz-copy-source-version-id"] = source_version
    return _copy_result(meta, entry.timestamp, headers)


def _copy_result(meta: ObjectMeta, timestamp: int, headers: dict[str, str]) -> web.StreamResponse:
    checksum = ""
    if meta.checksum_algorithm and meta.checksum_value:
        checksum = elem("Checksum" + meta.checksum_algorithm, meta.checksum_value)
    body = f"{elem('LastModified', iso8601(timestamp))}{elem('ETag', quote_etag(meta.etag))}{checksum}"
    return web.Response(body=document("CopyObjectResult", body), content_type="application/xml",
                        headers={**checksum_headers(meta), **headers})
