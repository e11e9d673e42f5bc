"""Bucket versioning: Get/PutBucketVersioning, and ListObjectVersions of versioned buckets.

A versioned bucket's listing merges two ordered scans from the same start: NS_VERSION (every
version and delete marker, a key's newest first) and NS_OBJECT, of which only objects written
before versioning was enabled count (they are their key's newest, ``null`` version). So a page
costs about a page of index reads of each namespace, never a scan of the bucket.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from leofs.gateway.backend import Backend
from leofs.gateway.body import RequestBody
from leofs.gateway.context import S3Request, Services
from leofs.gateway.fence import in_generation
from leofs.gateway.handlers import listing
from leofs.gateway.keys import NS_OBJECT, NS_VERSION, bucket_prefix, version_key
from leofs.gateway.owners import owner_of
from leofs.gateway.records import ObjectMeta, object_meta_decoder
from leofs.gateway.versions import check_version_id, is_versioned, load_version, new_sort_id, public_id
from leofs.s3.errors import S3Error
from leofs.s3.responses import document, elem, iso8601
from leofs.s3.versioning_xml import parse_versioning_configuration
from leofs.storage.model import Entry

_PAST = b"\xff"


async def get_bucket_versioning(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    body = elem("Status", bucket.versioning) if bucket.versioning else ""
    return web.Response(body=document("VersioningConfiguration", body), content_type="application/xml")


async def put_bucket_versioning(gw: Services, req: S3Request) -> web.StreamResponse:
    """Enabled or Suspended. MFA delete needs MFA devices this server does not have: asking to
    enable it answers 501 NotImplemented (Disabled is accepted, and is what every bucket has)."""
    bucket = req.require_bucket()
    config = parse_versioning_configuration(await RequestBody(req.http, req.auth).read_all(gw.config.max_xml_body))
    if config.mfa_delete == "Enabled":
        raise S3Error("NotImplemented", "MFA delete is not supported.")
    if config.status is not None and config.status != bucket.versioning:
        await gw.control.set_bucket_versioning(bucket.name, config.status)
    return web.Response(status=200)


class _Cursor:
    """Live entries of one namespace in key order from a start key, a page of the index at a time."""

    def __init__(self, backend: Backend, ns: int, prefix: bytes, start: bytes, page: int) -> None:
        self.backend, self.ns, self.prefix, self.last, self.page = backend, ns, prefix, start, page
        self.buffer: collections.deque[Entry] = collections.deque()
        self.done = False

    async def peek(self) -> Entry | None:
        while not self.buffer and not self.done:
            items = await self.backend.scan(self.ns, self.prefix, start_after=self.last, limit=self.page)
            self.done = len(items) < self.page
            entries = [item for item in items if isinstance(item, Entry)]
            if entries:
                self.last = entries[-1].key
            self.buffer.extend(entries)
        return self.buffer[0] if self.buffer else None

    def skip_past(self, bound: bytes) -> None:
        while self.buffer and self.buffer[0].key <= bound:
            self.buffer.popleft()
        if not self.buffer and self.last < bound:
            self.last = bound


@dataclass(slots=True)
class _Item:
    key: str
    entry: Entry
    meta: ObjectMeta
    latest: bool


async def _legacy(cursor: _Cursor, bound: bytes | None) -> tuple[Entry, ObjectMeta] | None:
    """The next pre-versioning object of the NS_OBJECT cursor (others are copies of versions), up
    to the object key ``bound`` (the next version's): every other current record has versions, so
    the cursor never runs further ahead of the version cursor than that."""
    while (entry := await cursor.peek()) is not None:
        if bound is not None and entry.key > bound:
            return None
        meta = object_meta_decoder.decode(entry.meta)
        if meta.version_id is None:
            return entry, meta
        cursor.buffer.popleft()
    return None


async def list_object_versions(gw: Services, req: S3Request) -> web.StreamResponse:
    bucket = req.require_bucket()
    if not is_versioned(bucket):
        return await listing.list_object_versions(gw, req)
    q = req.query
    url, enc_elem = listing._encoder(req)
    prefix, delimiter, key_marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.",
                      ArgumentName="version-id-marker", ArgumentValue=version_marker)
    if version_marker:
        check_version_id(version_marker)
    max_keys = listing._max_keys(req)
    base = bucket_prefix(bucket.name)
    full = base + prefix.encode()
    obj_start = ver_start = b""
    previous: str | None = None  # the key whose newest version an earlier page listed
    if key_marker:
        marker = base + key_marker.encode()
        rest = key_marker[len(prefix):] if key_marker.startswith(prefix) else ""
        cut = rest.find(delimiter) if delimiter else -1
        if cut >= 0:  # a rolled-up common prefix: go on after all of it
            obj_start = ver_start = base + (prefix + rest[: cut + len(delimiter)]).encode() + _PAST
        elif version_marker:
            previous, obj_start, ver_start = key_marker, marker, marker + b"\n"
            if version_marker != "null":
                ver_start = version_key(bucket.name, key_marker, version_marker)
            else:
                null = await load_version(gw.backend, bucket.name, key_marker, "null")
                if null is not None and null.meta.version_id is not None:
                    ver_start = version_key(bucket.name, key_marker, null.meta.version_id)
        else:
            obj_start, ver_start = marker, marker + b"\n" + _PAST
    page = max_keys + 1
    objects = _Cursor(gw.backend, NS_OBJECT, full, obj_start, page)
    versions = _Cursor(gw.backend, NS_VERSION, full, ver_start, page)
    items: list[_Item] = []
    prefixes: list[str] = []
    legacy_ids: dict[str, str] = {}  # key -> the sort id a copy of its pre-versioning object has
    truncated = False
    next_key = next_version = ""
    n = len(base)
    while True:
        version = await versions.peek()
        version_of = version.key.rpartition(b"\n")[0] if version is not None else None
        legacy = await _legacy(objects, version_of)
        if legacy is None and version is None:
            break
        legacy_key = legacy[0].key if legacy is not None else None
        use_legacy = legacy_key is not None and (version_of is None or legacy_key <= version_of)
        engine_key = legacy_key if use_legacy else version_of
        assert engine_key is not None
        key = engine_key[n:].decode()
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                if len(items) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                common = key[: cut + len(delimiter)]
                prefixes.append(common)
                next_key, next_version = common, ""
                bound = base + common.encode() + _PAST
                objects.skip_past(bound)
                versions.skip_past(bound)
                continue
        if len(items) + len(prefixes) >= max_keys:
            truncated = True
            break
        if use_legacy:
            assert legacy is not None
            entry, meta = legacy
            objects.buffer.popleft()
            legacy_ids[key] = new_sort_id(entry.timestamp, fixed=True)
        else:
            assert version is not None
            entry = versions.buffer.popleft()
            meta = object_meta_decoder.decode(entry.meta)
            if legacy_ids.get(key) == meta.version_id:
                continue  # the copy of a pre-versioning object listed just before
        if not in_generation(meta, bucket.created):
            continue
        items.append(_Item(key, entry, meta, key != previous))
        previous = key
        next_key, next_version = key, public_id(meta)
    head = [elem("Name", bucket.name), elem("Prefix", listing._enc(prefix, url)),
            elem("KeyMarker", listing._enc(key_marker, url)), elem("VersionIdMarker", version_marker),
            elem("MaxKeys", max_keys)]
    if delimiter:
        head.append(elem("Delimiter", listing._enc(delimiter, url)))
    head.append(elem("IsTruncated", "true" if truncated else "false"))
    if truncated:
        head.append(elem("NextKeyMarker", listing._enc(next_key, url)))
        if next_version:
            head.append(elem("NextVersionIdMarker", next_version))
    owners: dict[str, str] = {}
    out: list[str] = []
    for item in items:
        meta = item.meta
        owner = owners.get(meta.owner)
        if owner is None:
            owner = owners[meta.owner] = owner_of(gw, meta.owner)
        common = (f"{elem('Key', quote(item.key, safe='/') if url else item.key)}"
                  f"{elem('VersionId', public_id(meta))}{elem('IsLatest', 'true' if item.latest else 'false')}"
                  f"{elem('LastModified', iso8601(item.entry.timestamp))}")
        if meta.delete_marker:
            out.append(f"<DeleteMarker>{common}{owner}</DeleteMarker>")
        else:
            etag = elem("ETag", f'"{meta.etag}"')
            out.append(f"<Version>{common}{etag}{elem('Size', meta.size)}"
                       f"{owner}{elem('StorageClass', meta.storage_class)}</Version>")
    common_prefixes = "".join(f"<CommonPrefixes>{elem('Prefix', listing._enc(p, url))}</CommonPrefixes>"
                              for p in prefixes)
    body = "".join(head) + enc_elem + "".join(out) + common_prefixes
    return web.Response(body=document("ListVersionsResult", body), content_type="application/xml")
