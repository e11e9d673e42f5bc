"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads.

Parts are stored as blobs (chunks placed independently) with a part record each; Complete writes
the object's manifest from the part blobs without copying any data.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import time

import msgspec
from aiohttp import web

from leofs.gateway.backend import WriteConflict
from leofs.gateway.blobs import ingest
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.fence import fenced, stamp_generation
from leofs.gateway.handlers.acl import apply_header_grants
from leofs.gateway.handlers.copy import copy_range, copy_source
from leofs.gateway.handlers.headers import checksum_headers, meta_from_headers
from leofs.gateway.keys import NS_UPLOAD, bucket_prefix, upload_key
from leofs.gateway.objects import expected_version, load_object, visible_etag
from leofs.gateway.owners import owner_of
from leofs.gateway.records import Blob, ObjectMeta, UploadMeta, meta_encoder, upload_decoder
from leofs.gateway.uploads import (
    abort,
    await_result,
    finish,
    parts_of,
    read_done,
    read_upload,
    reopen,
    store_part,
    write_upload,
)
from leofs.gateway.versions import is_versioned, new_sort_id, version_headers
from leofs.s3.checksums import ALGORITHMS, combine_crc, composite, header_name, object_checksum_from_headers
from leofs.s3.conditions import check_write_conditions
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_key
from leofs.s3.numeric import bounded, decimal
from leofs.s3.responses import document, elem, iso8601, quote_etag
from leofs.s3.xmlparse import CompletedPart, parse_complete_multipart
from leofs.storage.model import CommonPrefix, Entry

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10000


def _now_us() -> int:
    return time.time_ns() // 1000


async def _upload(gw: Services, req: S3Request) -> UploadMeta:
    """The request's open upload (NoSuchUpload once it is completing, completed or aborted)."""
    upload_id = req.query.get("uploadId", "")
    got = await read_upload(gw.backend, req.bucket or "", req.key or "", upload_id)
    if got is None or got[1].state != "open":
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return got[1]


def _part_number(req: S3Request) -> int:
    raw = req.query.get("partNumber", "")
    return bounded(raw, "partNumber", 1, MAX_PARTS, "Part number must be an integer between 1 and 10000, inclusive")


async def create_multipart_upload(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    req.require_bucket()
    validate_key(req.key)
    meta = meta_from_headers(req)
    apply_header_grants(gw, req, meta)
    algorithm = req.headers.get("x-amz-checksum-algorithm")
    ctype = req.headers.get("x-amz-checksum-type")
    if algorithm is not None:
        algorithm = algorithm.upper()
        if algorithm not in ALGORITHMS:
            raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with "
                          "any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        ctype = (ctype or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")).upper()
        if ctype not in ("COMPOSITE", "FULL_OBJECT") or (algorithm == "CRC64NVME" and ctype == "COMPOSITE") or (
            algorithm.startswith("SHA") and ctype == "FULL_OBJECT"
        ):
            raise S3Error("InvalidRequest", f"The {ctype} checksum type cannot be used with the {algorithm} "
                          "checksum algorithm.")
    elif ctype is not None:
        raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                      "x-amz-checksum-algorithm header.")
    upload_id = secrets.token_hex(16)
    generation = stamp_generation(meta, req.bucket_record)
    upload = UploadMeta(upload_id, _now_us(), meta, algorithm, ctype)
    record = upload_key(req.bucket or "", req.key, upload_id)
    await gw.backend.put(NS_UPLOAD, record, b"", meta=meta_encoder.encode(upload))
    if await fenced(gw, req.bucket or "", generation):  # the bucket was deleted meanwhile
        await gw.backend.delete(NS_UPLOAD, record)
        raise S3Error("NoSuchBucket", BucketName=req.bucket or "")
    body = elem("Bucket", req.bucket) + elem("Key", req.key) + elem("UploadId", upload_id)
    headers = {}
    if algorithm:
        headers = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": ctype or ""}
    return web.Response(body=document("InitiateMultipartUploadResult", body), content_type="application/xml",
                        headers=headers)


async def _store_part(gw: Services, req: S3Request, number: int, blob: Blob) -> None:
    await store_part(gw, req.bucket or "", req.key or "", req.query["uploadId"], number, blob)


async def upload_part(gw: Services, req: S3Request) -> web.StreamResponse:
    number = _part_number(req)
    upload = await _upload(gw, req)
    body = RequestBody(req.http, req.auth)
    if upload.checksum_algorithm and body.checksum_algorithm not in (None, upload.checksum_algorithm):
        raise S3Error("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: "
                      f"{upload.checksum_algorithm.lower()}, actual checksum Type: {body.checksum_algorithm}")
    cfg = gw.config
    ingested = await ingest(gw.backend, req.bucket or "", req.key or "", body, threshold=0,
                            chunk_size=cfg.chunk_size, window=cfg.chunk_window, max_size=MAX_PART_SIZE,
                            budget=cfg.chunk_budget)
    assert ingested.blob is not None
    checksum = body.checksum_value(ingested.digests)
    blob = ingested.blob
    if checksum is not None:
        blob = Blob(blob.blob_id, blob.size, blob.chunk_size, blob.count, blob.md5, checksum[1], checksum[0],
                    _now_us())
    else:
        blob = Blob(blob.blob_id, blob.size, blob.chunk_size, blob.count, blob.md5, last_modified=_now_us())
    await _store_part(gw, req, number, blob)
    headers = {"ETag": f'"{blob.md5}"'}
    if checksum is not None:
        headers[header_name(checksum[0])] = checksum[1]
    return web.Response(status=200, headers=headers)


async def upload_part_copy(gw: Services, req: S3Request) -> web.StreamResponse:
    number = _part_number(req)
    await _upload(gw, req)
    src_bucket, src_key, src = await copy_source(gw, req)
    start, end = 0, src.size - 1
    source_range = req.headers.get("x-amz-copy-source-range")
    if source_range is not None:
        spec = source_range.strip().removeprefix("bytes=")
        first, _, last = spec.partition("-")
        first_byte, last_byte = decimal(first, saturate=src.size), decimal(last, saturate=src.size)
        if first_byte is not None and last_byte is not None and first_byte <= last_byte and last_byte >= src.size:
            # well-formed, but beyond the source's end: AWS answers 400 here, not 416
            raise S3Error("InvalidRange", "The requested range is not satisfiable", status=400,
                          ActualObjectSize=str(src.size), RangeRequested=source_range)
        if first_byte is None or last_byte is None or first_byte > last_byte:
            raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                          "bytes=first-last where first and last are the zero-based offsets of the first "
                          "and last bytes to copy", ArgumentName="x-amz-copy-source-range",
                          ArgumentValue=source_range)
        start, end = first_byte, last_byte
    if end - start + 1 > MAX_PART_SIZE:
        raise S3Error("InvalidRequest", "The specified copy range is larger than the maximum part size.")
    copied, md5 = await copy_range(gw, src_bucket, src_key, src, start, end, req.bucket or "", req.key or "",
                                   as_blob=True)
    assert isinstance(copied, Blob)
    blob = Blob(copied.blob_id, copied.size, copied.chunk_size, copied.count, md5, last_modified=_now_us())
    await _store_part(gw, req, number, blob)
    body = elem("LastModified", iso8601(blob.last_modified)) + elem("ETag", f'"{md5}"')
    return web.Response(body=document("CopyPartResult", body), content_type="application/xml")


async def complete_multipart_upload(gw: Services, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    bucket, key, upload_id = req.bucket or "", req.key, req.query.get("uploadId", "")
    got = await read_upload(gw.backend, bucket, key, upload_id)
    done = None if got is not None else await read_done(gw.backend, bucket, key, upload_id)
    if got is None and done is None:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    # the x-amz-checksum-* header is the object's checksum, checked once the parts are chosen
    wanted = object_checksum_from_headers(req.headers)
    body = await RequestBody(req.http, req.auth, object_checksum=True).read_all(gw.config.max_xml_body)
    requested = parse_complete_multipart(body)
    if not requested:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                      "published schema")
    numbers = [part.part_number for part in requested]
    if any(a >= b for a, b in itertools.pairwise(numbers)):  # the whole list, before any part
        raise S3Error("InvalidPartOrder")
    for _ in range(_ATTEMPTS):
        if got is None:  # completed (or completing) already: the same answer for the same parts
            return _completed(req, bucket, key, _same_parts(done, requested, upload_id))
        entry, upload = got
        if upload.state != "open":
            done = await await_result(gw, bucket, key, upload_id)
            if done is not None:
                return _completed(req, bucket, key, _same_parts(done, requested, upload_id))
            got, done = await _reread(gw, bucket, key, upload_id)  # open again: that Complete failed
            continue
        stored = await parts_of(gw.backend, bucket, key, upload_id)
        try:
            blobs = _chosen(upload, stored, requested)
        except S3Error as exc:
            # a Complete that finished meanwhile took the part records: its result is ours
            fresh, fresh_done = await _reread(gw, bucket, key, upload_id)
            if exc.code != "InvalidPart" or (fresh is not None and fresh[0].clock == entry.clock):
                raise
            got, done = fresh, fresh_done
            continue
        old = await load_object(gw.backend, bucket, key)
        meta = msgspec.structs.replace(upload.meta)
        stamp_generation(meta, req.bucket_record)
        check_write_conditions(req.headers, visible_etag(old, meta.generation))
        meta.size = sum(b.size for b in blobs)
        etag_md5 = hashlib.md5(b"".join(bytes.fromhex(b.md5) for b in blobs)).hexdigest()
        meta.etag = f"{etag_md5}-{len(blobs)}"
        meta.parts_count = len(blobs)
        if is_versioned(req.bucket_record):  # chosen now, so that a takeover writes the same version
            assert req.bucket_record is not None
            meta.version_id, meta.null_version = new_sort_id(), req.bucket_record.versioning == "Suspended"
        _final_checksum(upload, blobs, meta)
        _check_object_checksum(wanted, meta)
        completing = msgspec.structs.replace(upload, meta=meta, state="completing", numbers=numbers, blobs=blobs,
                                             base=expected_version(old))
        try:  # the serialisation point: fails if a part was stored, or another Complete or an Abort came first
            entry = await write_upload(gw.backend, bucket, key, completing, expect=entry.clock)
        except WriteConflict:
            got, done = await _reread(gw, bucket, key, upload_id)
            continue
        while not await finish(gw, bucket, key, entry, completing):
            # the object changed after the conditions were judged: judge them on what is there now
            old = await load_object(gw.backend, bucket, key)
            try:
                check_write_conditions(req.headers, visible_etag(old, meta.generation))
            except S3Error:
                await reopen(gw, bucket, key, entry, upload)
                raise
            completing = msgspec.structs.replace(completing, base=expected_version(old))
            try:
                entry = await write_upload(gw.backend, bucket, key, completing, expect=entry.clock)
            except WriteConflict:  # taken over (we stalled past the lease): its result is ours
                raise S3Error("ConditionalRequestConflict") from None
        return _completed(req, bucket, key, completing)
    raise S3Error("ConditionalRequestConflict")


async def _reread(gw: Services, bucket: str, key: str, upload_id: str) -> tuple[tuple[Entry, UploadMeta] | None,
                                                                              UploadMeta | None]:
    """The upload's record, or else its result; NoSuchUpload when neither is there (aborted)."""
    got = await read_upload(gw.backend, bucket, key, upload_id)
    done = None if got is not None else await read_done(gw.backend, bucket, key, upload_id)
    if got is None and done is None:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return got, done


_ATTEMPTS = 20  # a Complete re-lists the parts when one was stored meanwhile; uploads of parts end


def _chosen(upload: UploadMeta, stored: dict[int, Blob], requested: list[CompletedPart]) -> list[Blob]:
    """The blobs of the requested parts, checked (ETags, checksums, minimum part size)."""
    blobs: list[Blob] = []
    for index, part in enumerate(requested):
        blob = stored.get(part.part_number)
        if blob is None or part.etag.strip().strip('"').lower() != blob.md5:
            raise S3Error("InvalidPart", UploadId=upload.upload_id, PartNumber=str(part.part_number))
        for alg, value in part.checksums.items():
            if blob.checksum_algorithm == alg.upper() and blob.checksum != value:
                raise S3Error("InvalidPart", UploadId=upload.upload_id, PartNumber=str(part.part_number))
        if index < len(requested) - 1 and blob.size < MIN_PART_SIZE:
            raise S3Error("EntityTooSmall", ProposedSize=str(blob.size), MinSizeAllowed=str(MIN_PART_SIZE),
                          PartNumber=str(part.part_number), ETag=blob.md5)
        blobs.append(blob)
    return blobs


def _same_parts(done: UploadMeta | None, requested: list[CompletedPart], upload_id: str) -> UploadMeta:
    """A completed upload, when a repeated Complete names the parts it was completed with."""
    if done is None or done.numbers is None or done.blobs is None:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    if [p.part_number for p in requested] != done.numbers or any(
        p.etag.strip().strip('"').lower() != b.md5 for p, b in zip(requested, done.blobs, strict=True)
    ):
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return done


def _completed(req: S3Request, bucket: str, key: str, upload: UploadMeta) -> web.StreamResponse:
    meta = upload.meta
    checksum = ""
    if meta.checksum_algorithm and meta.checksum_value:
        checksum = elem("Checksum" + meta.checksum_algorithm, meta.checksum_value) + elem(
            "ChecksumType", meta.checksum_type or "")
    location = f"http://{req.headers.get('Host', '')}/{bucket}/{key}"
    doc = elem("Location", location) + elem("Bucket", bucket) + elem("Key", key) + elem(
        "ETag", f'"{meta.etag}"') + checksum
    return web.Response(body=document("CompleteMultipartUploadResult", doc), content_type="application/xml",
                        headers={**checksum_headers(meta), **version_headers(req.bucket_record, meta)})


def _check_object_checksum(wanted: tuple[str, str] | None, meta: ObjectMeta) -> None:
    """The checksum a Complete states for the object (``x-amz-checksum-*``) against the one the
    chosen parts give: BadDigest when they differ."""
    if wanted is None:
        return
    algorithm, value = wanted
    if meta.checksum_algorithm != algorithm or meta.checksum_value is None:
        raise S3Error("InvalidRequest", f"The upload was created using the {meta.checksum_algorithm or 'null'} "
                      f"checksum algorithm, not {algorithm}, or its parts have no such checksums.")
    if value != meta.checksum_value:
        raise S3Error("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")


def _final_checksum(upload: UploadMeta, blobs: list[Blob], meta: object) -> None:
    from leofs.gateway.records import ObjectMeta

    assert isinstance(meta, ObjectMeta)
    alg = upload.checksum_algorithm
    if alg is None or not blobs or any(b.checksum is None or b.checksum_algorithm != alg for b in blobs):
        meta.checksum_algorithm = meta.checksum_value = meta.checksum_type = None
        return
    digests = [base64.b64decode(b.checksum or "") for b in blobs]
    if upload.checksum_type == "FULL_OBJECT":
        combined = digests[0]
        for blob, digest in zip(blobs[1:], digests[1:], strict=True):
            combined = combine_crc(alg, combined, digest, blob.size)
        meta.checksum_value = base64.b64encode(combined).decode()
    else:
        meta.checksum_value = composite(alg, digests)
    meta.checksum_algorithm = alg
    meta.checksum_type = upload.checksum_type


async def abort_multipart_upload(gw: Services, req: S3Request) -> web.StreamResponse:
    await abort(gw, req.bucket or "", req.key or "", req.query.get("uploadId", ""))
    return web.Response(status=204)


async def list_parts(gw: Services, req: S3Request) -> web.StreamResponse:
    upload = await _upload(gw, req)
    q = req.query
    marker_raw, max_raw = q.get("part-number-marker", "0") or "0", q.get("max-parts", "1000")
    marker = bounded(marker_raw, "part-number-marker", 0, 2**31 - 1)
    max_parts = min(bounded(max_raw, "max-parts", 0, 2**31 - 1), 1000)
    stored = await parts_of(gw.backend, req.bucket or "", req.key or "", upload.upload_id)
    parts = sorted((n, b) for n, b in stored.items() if n > marker)
    page, truncated = parts[:max_parts], len(parts) > max_parts
    items = []
    for number, blob in page:
        checksum = ""
        if blob.checksum_algorithm and blob.checksum:
            checksum = elem("Checksum" + blob.checksum_algorithm, blob.checksum)
        items.append(f"<Part>{elem('PartNumber', number)}{elem('LastModified', iso8601(blob.last_modified))}"
                     f"{elem('ETag', quote_etag(blob.md5))}{elem('Size', blob.size)}{checksum}</Part>")
    owner = owner_of(gw, upload.meta.owner) if upload.meta.owner else ""
    head = (elem("Bucket", req.bucket) + elem("Key", req.key) + elem("UploadId", upload.upload_id)
            + owner.replace("<Owner>", "<Initiator>").replace("</Owner>", "</Initiator>") + owner
            + elem("StorageClass", upload.meta.storage_class) + elem("PartNumberMarker", marker)
            + elem("NextPartNumberMarker", page[-1][0] if page else marker) + elem("MaxParts", max_parts)
            + elem("IsTruncated", "true" if truncated else "false"))
    if upload.checksum_algorithm:
        head += elem("ChecksumAlgorithm", upload.checksum_algorithm) + elem("ChecksumType", upload.checksum_type or "")
    return web.Response(body=document("ListPartsResult", head + "".join(items)), content_type="application/xml")


async def list_multipart_uploads(gw: Services, req: S3Request) -> web.StreamResponse:
    req.require_bucket()
    q = req.query
    bucket = req.bucket or ""
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_raw = q.get("max-uploads", "1000")
    max_uploads = min(bounded(max_raw, "max-uploads", 0, 2**31 - 1), 1000)
    base = bucket_prefix(bucket)
    start = b""
    if key_marker:
        # after every upload of key-marker (or only those after upload-id-marker)
        start = base + key_marker.encode() + (b"\n" + id_marker.encode() if id_marker else b"\n\xff")
    items = await gw.backend.scan(NS_UPLOAD, base + prefix.encode(), start_after=start, limit=max_uploads + 1,
                                  delimiter=delimiter.encode() if delimiter else None)
    truncated = len(items) > max_uploads
    items = items[:max_uploads]
    out, prefixes = [], []
    next_key = next_id = ""
    for item in items:
        if isinstance(item, CommonPrefix):
            prefixes.append(f"<CommonPrefixes>{elem('Prefix', item.prefix[len(base):].decode())}</CommonPrefixes>")
            continue
        upload = upload_decoder.decode(item.meta)
        if upload.state != "open":  # being completed
            continue
        key = item.key[len(base):].decode().rsplit("\n", 1)[0]
        owner = owner_of(gw, upload.meta.owner) if upload.meta.owner else ""
        out.append(f"<Upload>{elem('Key', key)}{elem('UploadId', upload.upload_id)}"
                   f"{owner.replace('<Owner>', '<Initiator>').replace('</Owner>', '</Initiator>')}{owner}"
                   f"{elem('StorageClass', upload.meta.storage_class)}{elem('Initiated', iso8601(upload.initiated))}"
                   + (elem("ChecksumAlgorithm", upload.checksum_algorithm) if upload.checksum_algorithm else "")
                   + "</Upload>")
        next_key, next_id = key, upload.upload_id
    head = (elem("Bucket", bucket) + elem("KeyMarker", key_marker) + elem("UploadIdMarker", id_marker)
            + elem("NextKeyMarker", next_key) + elem("NextUploadIdMarker", next_id) + elem("Prefix", prefix)
            + (elem("Delimiter", delimiter) if delimiter else "") + elem("MaxUploads", max_uploads)
            + elem("IsTruncated", "true" if truncated else "false"))
    return web.Response(body=document("ListMultipartUploadsResult", head + "".join(out) + "".join(prefixes)),
                        content_type="application/xml")
