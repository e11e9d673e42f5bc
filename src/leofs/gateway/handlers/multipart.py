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
from typing import TYPE_CHECKING

from aiohttp import web

from leofs.gateway.backend import scan_entries
from leofs.gateway.blobs import delete_blob, ingest
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request
from leofs.gateway.handlers.buckets import owner_of
from leofs.gateway.handlers.copy import copy_range, copy_source
from leofs.gateway.handlers.headers import checksum_headers, meta_from_headers
from leofs.gateway.objects import forget_later, load_object, write_object
from leofs.gateway.records import (
    NS_PART,
    NS_UPLOAD,
    Blob,
    Manifest,
    UploadMeta,
    blob_decoder,
    meta_encoder,
    part_key,
    upload_decoder,
    upload_key,
)
from leofs.s3.checksums import ALGORITHMS, combine_crc, composite, header_name
from leofs.s3.conditions import check_write_conditions
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_key
from leofs.s3.numeric import bounded, decimal
from leofs.s3.responses import document, elem, iso8601, quote_etag
from leofs.s3.xmlparse import parse_complete_multipart
from leofs.storage.store import CommonPrefix

if TYPE_CHECKING:
    from leofs.gateway.app import Gateway

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10000


def _now_us() -> int:
    return time.time_ns() // 1000


async def _upload(gw: Gateway, req: S3Request) -> UploadMeta:
    upload_id = req.query.get("uploadId", "")
    entry = await gw.backend.head(NS_UPLOAD, upload_key(req.bucket or "", req.key or "", upload_id))
    if entry is None or not upload_id:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return upload_decoder.decode(entry.meta)


def _part_number(req: S3Request) -> int:
    raw = req.query.get("partNumber", "")
    return bounded(raw, "partNumber", 1, MAX_PARTS, "Part number must be an integer between 1 and 10000, inclusive")


async def create_multipart_upload(gw: Gateway, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    req.require_bucket()
    validate_key(req.key)
    meta = meta_from_headers(req)
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
    upload = UploadMeta(upload_id, _now_us(), meta, algorithm, ctype)
    await gw.backend.put(NS_UPLOAD, upload_key(req.bucket or "", req.key, upload_id), b"",
                         meta=meta_encoder.encode(upload))
    body = elem("Bucket", req.bucket) + elem("Key", req.key) + elem("UploadId", upload_id)
    headers = {}
    if algorithm:
        headers = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": ctype or ""}
    return web.Response(body=document("InitiateMultipartUploadResult", body), content_type="application/xml",
                        headers=headers)


async def _store_part(gw: Gateway, req: S3Request, number: int, blob: Blob) -> None:
    key = part_key(req.bucket or "", req.key or "", req.query["uploadId"], number)
    previous = await gw.backend.head(NS_PART, key)
    await gw.backend.put(NS_PART, key, b"", meta=meta_encoder.encode(blob))
    if previous is not None:  # a re-uploaded part replaces the old one
        await delete_blob(gw.backend, req.bucket or "", req.key or "", blob_decoder.decode(previous.meta))


async def upload_part(gw: Gateway, req: S3Request) -> web.StreamResponse:
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


async def upload_part_copy(gw: Gateway, req: S3Request) -> web.StreamResponse:
    number = _part_number(req)
    await _upload(gw, req)
    src_bucket, src_key, src = await copy_source(gw, req)
    start, end = 0, src.size - 1
    source_range = req.headers.get("x-amz-copy-source-range")
    if source_range is not None:
        spec = source_range.strip().removeprefix("bytes=")
        first, _, last = spec.partition("-")
        first_byte, last_byte = decimal(first, saturate=src.size), decimal(last, saturate=src.size)
        if first_byte is None or last_byte is None or first_byte > last_byte or last_byte >= src.size:
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


async def _parts(gw: Gateway, bucket: str, key: str, upload_id: str) -> dict[int, Blob]:
    prefix = f"{bucket}/{key}\n{upload_id}\n".encode()
    return {int(e.key[len(prefix):]): blob_decoder.decode(e.meta)
            async for e in scan_entries(gw.backend, NS_PART, prefix)}


async def complete_multipart_upload(gw: Gateway, req: S3Request) -> web.StreamResponse:
    assert req.key is not None
    upload = await _upload(gw, req)
    bucket, key = req.bucket or "", req.key
    body = await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body)
    requested = parse_complete_multipart(body)
    if not requested:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                      "published schema")
    numbers = [part.part_number for part in requested]
    if any(a >= b for a, b in itertools.pairwise(numbers)):  # the whole list, before any part
        raise S3Error("InvalidPartOrder")
    stored = await _parts(gw, bucket, key, upload.upload_id)
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
    old = await load_object(gw.backend, bucket, key)
    check_write_conditions(req.headers, old.etag if old else None)
    meta = upload.meta
    meta.size = sum(b.size for b in blobs)
    etag_md5 = hashlib.md5(b"".join(bytes.fromhex(b.md5) for b in blobs)).hexdigest()
    meta.etag = f"{etag_md5}-{len(blobs)}"
    meta.parts_count = len(blobs)
    _final_checksum(upload, blobs, meta)
    await write_object(gw.backend, bucket, key, meta, Manifest(blobs))
    forget_later(gw.background, gw.backend, bucket, key, old)
    used = {b.blob_id for b in blobs}
    await _drop_upload(gw, bucket, key, upload.upload_id, stored, keep=used)
    checksum = ""
    if meta.checksum_algorithm and meta.checksum_value:
        checksum = elem("Checksum" + meta.checksum_algorithm, meta.checksum_value) + elem(
            "ChecksumType", meta.checksum_type or "")
    location = f"http://{req.headers.get('Host', '')}/{bucket}/{key}"
    doc = elem("Location", location) + elem("Bucket", bucket) + elem("Key", key) + elem(
        "ETag", f'"{meta.etag}"') + checksum
    return web.Response(body=document("CompleteMultipartUploadResult", doc), content_type="application/xml",
                        headers=checksum_headers(meta))


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


async def _drop_upload(gw: Gateway, bucket: str, key: str, upload_id: str, parts: dict[int, Blob],
                       keep: set[str]) -> None:
    """Remove an upload: its marker first (so it stops being listed), then parts not in ``keep``."""
    await gw.backend.delete(NS_UPLOAD, upload_key(bucket, key, upload_id))
    for number, blob in parts.items():
        await gw.backend.delete(NS_PART, part_key(bucket, key, upload_id, number))
        if blob.blob_id not in keep:
            await delete_blob(gw.backend, bucket, key, blob)


async def abort_upload(gw: Gateway, bucket: str, key: str, upload_id: str) -> None:
    """Remove an upload and free its parts (AbortMultipartUpload, and expiry of old uploads)."""
    parts = await _parts(gw, bucket, key, upload_id)
    # never touch the blobs of an object already completed from this upload (a retried abort after
    # a crash between Complete's steps)
    current = await load_object(gw.backend, bucket, key)
    keep = {b.blob_id for b in current.manifest.blobs} if current and current.manifest else set()
    await _drop_upload(gw, bucket, key, upload_id, parts, keep)


async def abort_multipart_upload(gw: Gateway, req: S3Request) -> web.StreamResponse:
    upload = await _upload(gw, req)
    await abort_upload(gw, req.bucket or "", req.key or "", upload.upload_id)
    return web.Response(status=204)


async def list_parts(gw: Gateway, req: S3Request) -> web.StreamResponse:
    upload = await _upload(gw, req)
    q = req.query
    marker_raw, max_raw = q.get("part-number-marker", "0") or "0", q.get("max-parts", "1000")
    marker = bounded(marker_raw, "part-number-marker", 0, 2**31 - 1)
    max_parts = min(bounded(max_raw, "max-parts", 0, 2**31 - 1), 1000)
    parts = sorted((n, b) for n, b in (await _parts(gw, req.bucket or "", req.key or "", upload.upload_id)).items()
                   if n > marker)
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


async def list_multipart_uploads(gw: Gateway, req: S3Request) -> web.StreamResponse:
    req.require_bucket()
    q = req.query
    bucket = req.bucket or ""
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_raw = q.get("max-uploads", "1000")
    max_uploads = min(bounded(max_raw, "max-uploads", 0, 2**31 - 1), 1000)
    base = f"{bucket}/".encode()
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
