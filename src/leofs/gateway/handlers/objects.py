"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
GetObjectAttributes."""

from __future__ import annotations

import logging

from aiohttp import web

from leofs.gateway.backend import VersionGone, WriteConflict
from leofs.gateway.blobs import Ingested, delete_blob, ingest
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.fence import fenced, stamp_generation, undo_write
from leofs.gateway.handlers.acl import apply_header_grants
from leofs.gateway.handlers.headers import checksum_headers, meta_from_headers, object_headers, response_overrides
from leofs.gateway.handlers.hit import hit_response
from leofs.gateway.keys import NS_OBJECT, object_key
from leofs.gateway.objects import (
    StoredObject,
    fetched_object,
    forget_later,
    load_object,
    replaced_object,
    send_body,
    visible_etag,
    write_if,
    write_object,
)
from leofs.gateway.records import ObjectMeta
from leofs.gateway.versions import (
    check_version_id,
    checked_current,
    is_versioned,
    load_version,
    public_id,
    put_version,
    remove_version,
    requested_object,
    requested_version,
    undo_version,
    version_headers,
)
from leofs.s3.conditions import check_read_conditions, check_write_conditions
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_key
from leofs.s3.numeric import bounded
from leofs.s3.ranges import parse_range
from leofs.s3.responses import document, elem, iso8601
from leofs.s3.xmlparse import parse_delete_entries

log = logging.getLogger("leofs.gateway.objects")


async def put_object(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    req.require_bucket()
    validate_key(req.key)
    meta = meta_from_headers(req)
    apply_header_grants(gw, req, meta)
    generation = stamp_generation(meta, req.bucket_record)
    conditional = "If-None-Match" in req.headers or "If-Match" in req.headers
    # the replaced version (whose chunks are freed afterwards) is reported by the write itself, so it
    # is looked up first only to check conditions
    if conditional:
        old = await load_object(gw.backend, req.bucket or "", req.key)
        check_write_conditions(req.headers, visible_etag(old, generation))
    body = RequestBody(req.http, req.auth)
    if body.declared_length is None and not body.aws_chunked and "chunked" not in req.headers.get(
        "Transfer-Encoding", ""
    ).lower():
        raise S3Error("MissingContentLength")
    cfg = gw.config
    ingested = await ingest(
        gw.backend, req.bucket or "", req.key, body,
        threshold=cfg.chunk_threshold, chunk_size=cfg.chunk_size, window=cfg.chunk_window, budget=cfg.chunk_budget,
        max_size=cfg.max_single_put,
    )
    meta.size = ingested.size
    meta.etag = ingested.digests.md5.hexdigest()
    checksum = body.checksum_value(ingested.digests)
    if checksum is not None:
        meta.checksum_algorithm, meta.checksum_value = checksum
        meta.checksum_type = "FULL_OBJECT"
    if is_versioned(req.bucket_record):
        return await _put_version(gw, req, meta, ingested, conditional)
    if conditional:  # judged again on the version the write replaces (compare-and-set)
        try:
            written, replaced = await write_if(gw.backend, req.bucket or "", req.key, req.headers, meta, ingested)
        except S3Error:
            if ingested.blob is not None:  # nothing refers to the body's chunks
                await delete_blob(gw.backend, req.bucket or "", req.key, ingested.blob)
            raise
    else:
        written, replaced = await write_object(gw.backend, req.bucket or "", req.key, meta, ingested)
    if await fenced(gw, req.bucket or "", generation):  # the bucket was deleted while the body streamed
        await undo_write(gw, req.bucket or "", req.key, written, replaced,
                         [ingested.blob] if ingested.blob is not None else [])
        raise S3Error("NoSuchBucket", BucketName=req.bucket or "")
    forget_later(gw, req.bucket or "", req.key, await replaced_object(gw.backend, replaced))
    headers = {"ETag": f'"{meta.etag}"', **checksum_headers(meta)}
    return web.Response(status=200, headers=headers)


async def _put_version(gw: Services, req: S3Request, meta: ObjectMeta, ingested: Ingested,
                       conditional: bool) -> web.StreamResponse:
    """PutObject in a versioned bucket: a new version (the null version while suspended)."""
    bucket, key = req.require_bucket(), req.key or ""
    try:
        await put_version(gw, bucket, key, meta, ingested, headers=req.headers if conditional else None)
    except S3Error:
        if ingested.blob is not None:  # nothing refers to the body's chunks
            await delete_blob(gw.backend, bucket.name, key, ingested.blob)
        raise
    assert meta.version_id is not None
    if await fenced(gw, bucket.name, meta.generation):  # the bucket was deleted while the body streamed
        await undo_version(gw, bucket.name, key, meta.version_id)
        raise S3Error("NoSuchBucket", BucketName=bucket.name)
    headers = {"ETag": f'"{meta.etag}"', **checksum_headers(meta), **version_headers(bucket, meta)}
    return web.Response(status=200, headers=headers)


def _part_range(obj: StoredObject, part_number: int) -> tuple[int, int]:
    """Byte range (inclusive) of part ``part_number`` of an object."""
    # AWS answers 416 InvalidPartNumber with the part asked for and the object's part count
    if obj.manifest is None or obj.meta.parts_count == 0:
        if part_number != 1:
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416,
                          PartNumberRequested=str(part_number), ActualPartCount="1")
        return 0, obj.size - 1
    if part_number > len(obj.manifest.blobs):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416,
                      PartNumberRequested=str(part_number), ActualPartCount=str(len(obj.manifest.blobs)))
    start = sum(b.size for b in obj.manifest.blobs[: part_number - 1])
    return start, start + obj.manifest.blobs[part_number - 1].size - 1


async def get_object(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    response_overrides(req)  # refused before the object is looked up: the answer tells nothing about it
    generation = req.require_bucket().created
    for _ in range(3):
        inline: bytes | None = None
        if "versionId" in req.query:
            obj = await requested_version(req, gw.backend, req.query["versionId"])
        elif req.method == "GET" and not gw.backend.local:
            # remote storage: the record and an inline body come back in one call
            got = await gw.backend.fetch(NS_OBJECT, object_key(req.bucket or "", req.key))
            answer = hit_response(req, got, generation)  # a plain GET of an http-mode cache hit
            if answer is not None:
                return answer
            fetched = fetched_object(got, generation=generation)
            obj = await checked_current(req, gw.backend, fetched[0] if fetched else None)
            inline = fetched[1] if fetched else None
        else:
            obj = await checked_current(req, gw.backend, await load_object(gw.backend, req.bucket or "", req.key,
                                                                           generation=generation))
        check_read_conditions(req.headers, obj.quoted_etag, obj.last_modified / 1e6)
        status, headers, start, end = _plan_response(req, obj)
        headers.update(version_headers(req.bucket_record, obj.meta))
        body: bytes | None = None
        if inline is not None:
            body = inline[start : end + 1] if end >= start else b""
        elif req.method != "HEAD" and obj.manifest is None and end - start + 1 <= gw.config.verify_below:
            # Small bodies are read before the headers go out: if the object was overwritten in the
            # meantime the answer is simply the new version, never a body cut short.
            try:
                body = await gw.backend.read(obj.entry, start, end - start + 1) if end >= start else b""
            except VersionGone:
                continue
        return await _respond(gw, req, obj, status, headers, start, end, body)
    raise VersionGone()


def _plan_response(req: S3Request, obj: StoredObject) -> tuple[int, dict[str, str], int, int]:
    """Status, headers and byte range (inclusive) of a GET or HEAD of ``obj``."""
    headers = object_headers(req, obj)
    size = obj.size
    start, end = 0, size - 1
    status = 200
    ranged = False
    part = req.query.get("partNumber")
    if part is not None:
        number = bounded(part, "partNumber", 1, 10000, "Part number must be an integer between 1 and 10000, inclusive")
        start, end = _part_range(obj, number)
        if obj.meta.parts_count:
            headers["x-amz-mp-parts-count"] = str(obj.meta.parts_count)
        if obj.meta.parts_count or "Range" in req.headers:
            status = 206
            ranged = True
    elif "Range" in req.headers:
        selected = parse_range(req.headers["Range"], size)
        if selected is not None:
            start, end = selected
            status = 206
            ranged = True
    if ranged:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}" if size else f"bytes */{size}"
    elif req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers.update(checksum_headers(obj.meta))
    return status, headers, start, end


async def _respond(gw: Services, req: S3Request, obj: StoredObject, status: int, headers: dict[str, str],
                   start: int, end: int, body: bytes | None) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = max(0, end - start + 1)
    await response.prepare(req.http)
    if req.method != "HEAD":
        try:
            if body is not None:
                await response.write(body)
            else:
                await send_body(req.http, response, gw.backend, req.bucket or "", req.key or "", obj, start, end,
                                gw.config.verify_below)
        except Exception as exc:
            # The headers are out: no error document can follow. Cut the connection so the client
            # sees a short body (and retries) instead of waiting for bytes that will never come.
            log.warning("GET %s/%s broken off after the headers: %s", req.bucket, req.key, exc)
            if req.http.transport is not None:
                req.http.transport.abort()
            raise ConnectionResetError(str(exc)) from exc
    await response.write_eof()
    return response


async def delete_object(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    version_id, marker = await _delete_one(gw, req, req.key, req.query.get("versionId"), req.headers.get("If-Match"))
    headers = {}
    if version_id is not None:
        headers["x-amz-version-id"] = version_id
    if marker:
        headers["x-amz-delete-marker"] = "true"
    return web.Response(status=204, headers=headers)


async def _delete_one(gw: Services, req: S3Request, key: str, version_id: str | None,
                      if_match: str | None = None) -> tuple[str | None, bool]:
    """Delete a key: a version for good (``version_id``), a delete marker (versioned bucket), or the
    object. Answers the version id concerned (None in an unversioned bucket) and whether it is a
    delete marker. With ``if_match`` (DeleteObject's If-Match, a DeleteObjects entry's ETag) only
    when the version concerned has that ETag (412 PreconditionFailed otherwise); in an unversioned
    bucket as a compare-and-set on that version."""
    bucket = req.require_bucket()
    generation = bucket.created
    if version_id is not None:
        check_version_id(version_id)
        version = await load_version(gw.backend, bucket.name, key, version_id, generation=generation)
        if if_match is not None:
            check_write_conditions({"if-match": if_match},
                                   None if version is None or version.meta.delete_marker else version.quoted_etag)
        if version is not None:
            await remove_version(gw, bucket.name, key, version)
        return version_id, version is not None and version.meta.delete_marker
    if is_versioned(bucket):
        if if_match is not None:
            check_write_conditions({"if-match": if_match},
                                   visible_etag(await load_object(gw.backend, bucket.name, key), generation))
        meta = ObjectMeta(0, "", req.access_key or "", delete_marker=True)
        stamp_generation(meta, bucket)
        await put_version(gw, bucket, key, meta, b"")
        return public_id(meta), True
    record = object_key(bucket.name, key)
    if if_match is None:
        # the delete reports the version it replaced, whose chunks are freed afterwards
        replaced = await gw.backend.delete(NS_OBJECT, record)
        forget_later(gw, bucket.name, key, await replaced_object(gw.backend, replaced))
        return None, False
    for _ in range(5):
        current = await load_object(gw.backend, bucket.name, key)
        check_write_conditions({"if-match": if_match}, visible_etag(current, generation))
        assert current is not None
        try:
            replaced = await gw.backend.delete(NS_OBJECT, record, expect=current.entry.clock)
        except WriteConflict:  # overwritten meanwhile: judged again on the new version
            continue
        forget_later(gw, bucket.name, key, await replaced_object(gw.backend, replaced))
        return None, False
    raise S3Error("ConditionalRequestConflict")


async def delete_objects(gw: Services, req: S3Request) -> web.StreamResponse:
    req.require_bucket()
    body = RequestBody(req.http, req.auth)
    if body.expected_md5 is None and body.checksum_algorithm is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    quiet, entries = parse_delete_entries(await body.read_all(gw.config.max_xml_body))
    out: list[str] = []
    for entry in entries:
        key, asked = entry.key, entry.version_id
        given = elem("VersionId", asked) if asked is not None else ""
        try:
            validate_key(key)
            version_id, marker = await _delete_one(gw, req, key, asked, entry.etag)
        except S3Error as err:
            out.append(f"<Error>{elem('Key', key)}{given}{elem('Code', err.code)}{elem('Message', err.message)}"
                       "</Error>")
            continue
        if not quiet:
            if marker:
                given += elem("DeleteMarker", "true") + elem("DeleteMarkerVersionId", version_id)
            out.append(f"<Deleted>{elem('Key', key)}{given}</Deleted>")
    return web.Response(body=document("DeleteResult", "".join(out)), content_type="application/xml")


async def get_object_attributes(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    obj = await requested_object(req, gw.backend)
    check_read_conditions(req.headers, obj.quoted_etag, obj.last_modified / 1e6)
    wanted = {a.strip().lower() for a in req.headers.get("x-amz-object-attributes", "").split(",") if a.strip()}
    if not wanted:
        raise S3Error("InvalidArgument", "The x-amz-object-attributes header specifying the attributes to be "
                      "retrieved is either missing or empty", ArgumentName="x-amz-object-attributes")
    parts: list[str] = []
    meta = obj.meta
    if "etag" in wanted:
        parts.append(elem("ETag", meta.etag))
    if "checksum" in wanted and meta.checksum_algorithm and meta.checksum_value:
        ctype = elem("ChecksumType", meta.checksum_type) if meta.checksum_type else ""
        parts.append(f"<Checksum>{elem('Checksum' + meta.checksum_algorithm, meta.checksum_value)}{ctype}</Checksum>")
    if "objectparts" in wanted and meta.parts_count and obj.manifest is not None:
        parts.append(_object_parts(req, obj))
    if "storageclass" in wanted:
        parts.append(elem("StorageClass", meta.storage_class))
    if "objectsize" in wanted:
        parts.append(elem("ObjectSize", meta.size))
    headers = {"Last-Modified": iso8601(obj.last_modified), **version_headers(req.bucket_record, obj.meta)}
    return web.Response(body=document("GetObjectAttributesResponse", "".join(parts)),
                        content_type="application/xml", headers=headers)


def _object_parts(req: S3Request, obj: StoredObject) -> str:
    assert obj.manifest is not None
    blobs = obj.manifest.blobs
    marker = bounded(req.headers.get("x-amz-part-number-marker", "0") or "0", "x-amz-part-number-marker", 0, 2**31 - 1)
    max_parts = min(bounded(req.headers.get("x-amz-max-parts", "1000") or "1000", "x-amz-max-parts", 0, 2**31 - 1),
                    1000)
    chosen = [(n, b) for n, b in enumerate(blobs, 1) if n > marker][:max_parts]
    truncated = bool(chosen) and chosen[-1][0] < len(blobs)
    items = []
    for number, blob in chosen:
        checksum = ""
        if blob.checksum and blob.checksum_algorithm:
            checksum = elem("Checksum" + blob.checksum_algorithm, blob.checksum)
        items.append(f"<Part>{elem('PartNumber', number)}{elem('Size', blob.size)}{checksum}</Part>")
    next_marker = chosen[-1][0] if chosen else marker
    return (f"<ObjectParts>{elem('PartsCount', len(blobs))}{elem('PartNumberMarker', marker)}"
            f"{elem('NextPartNumberMarker', next_marker)}{elem('MaxParts', max_parts)}"
            f"{elem('IsTruncated', 'true' if truncated else 'false')}{''.join(items)}</ObjectParts>")


