"""Listing: ListObjects (v1), ListObjectsV2, and ListObjectVersions for unversioned buckets.

A page is one ordered range scan of the index from the marker, with delimiter roll-ups done by
the engine (it skips a whole common prefix instead of visiting every key under it). Records of a
deleted generation of the bucket are left out (``leofs.gateway.fence.in_generation``), so a page
may hold fewer keys than asked for; paging goes on from the last key scanned.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from leofs.gateway.backend import scan_entries
from leofs.gateway.context import S3Request, Services
from leofs.gateway.fence import in_generation, read_fence
from leofs.gateway.keys import NS_OBJECT, bucket_prefix
from leofs.gateway.owners import owner_of
from leofs.gateway.records import ObjectMeta, object_meta_decoder
from leofs.s3.errors import S3Error
from leofs.s3.responses import document, elem, iso_seconds
from leofs.s3.xmlparse import xml_escape
from leofs.storage.model import Entry

MAX_KEYS = 1000
#: sorts after every UTF-8 continuation of a prefix (0xFF never occurs in UTF-8)
_PAST = b"\xff"


@dataclass(slots=True)
class Page:
    contents: list[tuple[str, Entry, ObjectMeta]]
    prefixes: list[str]
    truncated: bool
    next_start: bytes  # full engine key to continue after
    next_marker: str = ""  # the key or common prefix to continue after, when truncated


def _max_keys(req: S3Request, name: str = "max-keys") -> int:
    raw = req.query.get(name, str(MAX_KEYS))
    try:
        value = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range",
                      ArgumentName=name, ArgumentValue=raw) from None
    if not 0 <= value <= 2147483647:
        raise S3Error("InvalidArgument", f"Argument {name} must be an integer between 0 and 2147483647",
                      ArgumentName=name, ArgumentValue=raw)
    return min(value, MAX_KEYS)


def _encoder(req: S3Request) -> tuple[bool, str]:
    encoding = req.query.get("encoding-type")
    if encoding is None:
        return False, ""
    if encoding.lower() != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request",
                      ArgumentName="encoding-type", ArgumentValue=encoding)
    return True, elem("EncodingType", "url")


def _enc(value: str, url: bool) -> str:
    return quote(value, safe="/") if url else value


async def scan_page(gw: Services, bucket: str, prefix: str, delimiter: str, start_after: str | bytes,
                    max_keys: int, generation: float) -> Page:
    """One page of keys and common prefixes after ``start_after`` (a key, or a full engine key), of
    the bucket generation ``generation`` (its ``created`` time)."""
    base = bucket_prefix(bucket)
    full_prefix = base + prefix.encode()
    if isinstance(start_after, bytes):
        start = start_after
    else:
        start = base + start_after.encode() if start_after else b""
        if delimiter and start.startswith(full_prefix):
            # a marker inside a rolled-up prefix continues after that whole prefix
            rest = start[len(full_prefix):]
            cut = rest.find(delimiter.encode())
            if cut >= 0:
                start = full_prefix + rest[: cut + len(delimiter.encode())] + _PAST
    if max_keys == 0:
        return Page([], [], False, start)
    items = await gw.backend.scan(
        NS_OBJECT, full_prefix, start_after=start, limit=max_keys + 1,
        delimiter=delimiter.encode() if delimiter else None,
    )
    truncated = len(items) > max_keys
    if truncated:
        items = items[:max_keys]
    page = Page([], [], truncated, start)
    if not items:
        return page
    n = len(base)
    contents, prefixes = page.contents, page.prefixes
    add, decode = contents.append, object_meta_decoder.decode
    # A common prefix is rolled up from its first key, which may be of a deleted generation: it is
    # checked only when the bucket's name has a deleted generation (one fence read per page).
    verify = bool(delimiter) and any(not isinstance(item, Entry) for item in items) and await _name_reused(gw, bucket)
    for item in items:
        if isinstance(item, Entry):
            meta = decode(item.meta)
            if in_generation(meta, generation):
                add((item.key[n:].decode(), item, meta))
        elif not verify or await _holds_generation(gw, item.prefix, generation):
            prefixes.append(item.prefix[n:].decode())
    last = items[-1]
    page.next_start = last.key if isinstance(last, Entry) else last.prefix + _PAST
    page.next_marker = (last.key if isinstance(last, Entry) else last.prefix)[n:].decode()
    return page


async def _name_reused(gw: Services, bucket: str) -> bool:
    """Whether a bucket of this name was deleted (or a DeleteBucket of it died half-way): only then
    can records of another generation be stored under it."""
    _, fence = await read_fence(gw, bucket)
    return bool(fence.deleted or fence.deleting)


async def _holds_generation(gw: Services, prefix: bytes, generation: float) -> bool:
    async for entry in scan_entries(gw.backend, NS_OBJECT, prefix, page=32):
        if in_generation(object_meta_decoder.decode(entry.meta), generation):
            return True
    return False


def _contents(gw: Services, page: Page, url: bool, owner: bool, tag: str = "Contents", version: bool = False) -> str:
    """The ``<Contents>`` (or ``<Version>``) elements of a page, one f-string per key.

    Values are escaped as :func:`~leofs.s3.responses.elem` does; a size is an int and needs none,
    nor does the quote-free ISO time, and the ETag's quotes are written as the entities they become.
    """
    contents = page.contents
    # Keys and ETags rarely need escaping: check the whole page in one pass rather than per value.
    # (URL-encoded keys never do.)
    raw = "".join([meta.etag if url else key + meta.etag for key, _, meta in contents])
    plain = xml_escape(raw) == raw
    owners: dict[str, str] = {}
    out: list[str] = []
    add = out.append
    for key, entry, meta in contents:
        k = quote(key, safe="/") if url else key
        etag = meta.etag
        if not plain:
            k, etag = xml_escape(k), xml_escape(etag)
        seconds, us = divmod(entry.timestamp, 1_000_000)
        sc = meta.storage_class
        if sc != "STANDARD":
            sc = xml_escape(sc)
        ow = ""
        if owner:
            ow = owners.get(meta.owner, "")
            if not ow:
                ow = owners[meta.owner] = owner_of(gw, meta.owner)
        if version:
            add(f"<{tag}><Key>{k}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
                f"<LastModified>{iso_seconds(seconds)}{us // 1000:03d}Z</LastModified>"
                f"<ETag>&quot;{etag}&quot;</ETag><Size>{meta.size}</Size>{ow}"
                f"<StorageClass>{sc}</StorageClass></{tag}>")
        else:
            ca = meta.checksum_algorithm
            add(f"<{tag}><Key>{k}</Key><LastModified>{iso_seconds(seconds)}{us // 1000:03d}Z</LastModified>"
                f"<ETag>&quot;{etag}&quot;</ETag><Size>{meta.size}</Size>"
                f"<StorageClass>{sc}</StorageClass>"
                f"{f'<ChecksumAlgorithm>{xml_escape(ca)}</ChecksumAlgorithm>' if ca else ''}{ow}</{tag}>")
    return "".join(out)


def _prefixes(page: Page, url: bool) -> str:
    return "".join(f"<CommonPrefixes><Prefix>{xml_escape(_enc(p, url))}</Prefix></CommonPrefixes>"
                   for p in page.prefixes)


async def list_objects(gw: Services, req: S3Request) -> web.StreamResponse:
    req.require_bucket()
    q = req.query
    url, enc_elem = _encoder(req)
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    max_keys = _max_keys(req)
    generation = req.require_bucket().created
    page = await scan_page(gw, req.bucket or "", prefix, delimiter, marker, max_keys, generation)
    # Prefix comes back as sent even with encoding-type=url (AWS does so; botocore decodes only
    # the other fields of a v1 listing)
    head = [elem("Name", req.bucket), elem("Prefix", prefix), elem("Marker", _enc(marker, url)),
            elem("MaxKeys", max_keys)]
    if delimiter:
        head.append(elem("Delimiter", _enc(delimiter, url)))
    head.append(elem("IsTruncated", "true" if page.truncated else "false"))
    if page.truncated:
        head.append(elem("NextMarker", _enc(page.next_marker, url)))
    body = "".join(head) + enc_elem + _contents(gw, page, url, True) + _prefixes(page, url)
    return web.Response(body=document("ListBucketResult", body), content_type="application/xml")


def _token(start: bytes) -> str:
    return base64.urlsafe_b64encode(start).decode()


def _untoken(token: str, bucket: str) -> bytes:
    try:
        start = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        start = b""
    if not start.startswith(bucket_prefix(bucket)):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      ArgumentName="continuation-token")
    return start


async def list_objects_v2(gw: Services, req: S3Request) -> web.StreamResponse:
    generation = req.require_bucket().created
    q = req.query
    url, enc_elem = _encoder(req)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    start_after = q.get("start-after", "")
    token = q.get("continuation-token") or None  # an empty token is no token
    max_keys = _max_keys(req)
    start: str | bytes = _untoken(token, req.bucket or "") if token is not None else start_after
    page = await scan_page(gw, req.bucket or "", prefix, delimiter, start, max_keys, generation)
    head = [elem("Name", req.bucket), elem("Prefix", _enc(prefix, url))]
    if delimiter:
        head.append(elem("Delimiter", _enc(delimiter, url)))
    head += [elem("MaxKeys", max_keys), elem("KeyCount", len(page.contents) + len(page.prefixes)),
             elem("IsTruncated", "true" if page.truncated else "false")]
    if token is not None:
        head.append(elem("ContinuationToken", token))
    if page.truncated:
        head.append(elem("NextContinuationToken", _token(page.next_start)))
    if start_after:
        head.append(elem("StartAfter", _enc(start_after, url)))
    fetch_owner = q.get("fetch-owner", "false").lower() == "true"
    body = "".join(head) + enc_elem + _contents(gw, page, url, fetch_owner) + _prefixes(page, url)
    return web.Response(body=document("ListBucketResult", body), content_type="application/xml")


async def list_object_versions(gw: Services, req: S3Request) -> web.StreamResponse:
    """Unversioned buckets: every object is its only version, VersionId ``null``."""
    generation = req.require_bucket().created
    q = req.query
    url, enc_elem = _encoder(req)
    prefix, delimiter, key_marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.",
                      ArgumentName="version-id-marker", ArgumentValue=version_marker)
    max_keys = _max_keys(req)
    page = await scan_page(gw, req.bucket or "", prefix, delimiter, key_marker, max_keys, generation)
    head = [elem("Name", req.bucket), elem("Prefix", _enc(prefix, url)), elem("KeyMarker", _enc(key_marker, url)),
            elem("VersionIdMarker", version_marker), elem("MaxKeys", max_keys)]
    if delimiter:
        head.append(elem("Delimiter", _enc(delimiter, url)))
    head.append(elem("IsTruncated", "true" if page.truncated else "false"))
    if page.truncated:
        head += [elem("NextKeyMarker", _enc(page.next_marker, url)), elem("NextVersionIdMarker", "null")]
    body = "".join(head) + enc_elem + _contents(gw, page, url, True, "Version", True) + _prefixes(page, url)
    return web.Response(body=document("ListVersionsResult", body), content_type="application/xml")
