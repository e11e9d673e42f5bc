"""Object versions in versioned buckets: ids, the NS_VERSION entries, and the current record.

Every version (and delete marker) of a versioned bucket is an entry of its own in NS_VERSION,
``bucket/key\\n<sort id>``; the NS_OBJECT record stays the current version (a copy of the newest
version's entry, absent while the newest is a delete marker), so plain GETs and listings cost what
they cost in unversioned buckets. A sort id is 16 hex digits of inverted microseconds plus 8 random
ones: a key's versions sort newest first, and two writers never pick the same id. The public id is
the sort id, or ``null`` for a version written while versioning was suspended (``null_version``)
and for an object written before versioning was enabled (``version_id`` None: it lives only in
NS_OBJECT until a versioned write replaces it, which first copies it into NS_VERSION under a
sort id fixed by its timestamp, so copying it twice writes the same entry).

Writes go version entry first, then the current record, as a compare-and-set that lets the newest
version win: a crash in between leaves the new version listed and the old one served by plain
reads until the key's next write or version removal, which set the current record again. A version
and the current record copied from it share blobs; blobs are freed only when their version entry
is removed, after the current record has moved off it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping

from leofs.accounts import Bucket
from leofs.gateway.access import may_list
from leofs.gateway.backend import Backend, WriteConflict, scan_entries
from leofs.gateway.blobs import Ingested
from leofs.gateway.context import S3Request, Services
from leofs.gateway.fence import in_generation
from leofs.gateway.grace import free_later
from leofs.gateway.keys import NS_OBJECT, NS_VERSION, object_key, version_key
from leofs.gateway.object_acl import check_object_acl
from leofs.gateway.objects import (
    Record,
    StoredObject,
    encode_record,
    expected_version,
    load_object,
    visible_etag,
)
from leofs.gateway.records import Manifest, ObjectMeta, UploadMeta, manifest_decoder, meta_encoder, object_meta_decoder
from leofs.s3.conditions import check_write_conditions
from leofs.s3.errors import S3Error
from leofs.s3.responses import http_date
from leofs.storage.model import EXPECT_ABSENT, Entry

SORT_ID = re.compile(r"[0-9a-f]{24}\Z")
_TOP = (1 << 64) - 1
_ATTEMPTS = 50


def new_sort_id(timestamp_us: int | None = None, *, fixed: bool = False) -> str:
    """A new version's sort id (newest sorts first); ``fixed``: the one of a pre-versioning object."""
    us = timestamp_us if timestamp_us is not None else time.time_ns() // 1000
    return f"{_TOP - us:016x}{'0' * 8 if fixed else secrets.token_hex(4)}"


def sort_id_time(sort_id: str) -> int:
    """The time (µs) a sort id was made at: the version's Last-Modified, so that clients that order
    versions by time (rclone names old versions by it) see the listing's order."""
    return _TOP - int(sort_id[:16], 16)


def public_id(meta: ObjectMeta) -> str:
    """The version id S3 clients see."""
    return "null" if meta.version_id is None or meta.null_version else meta.version_id


def sort_id_of(obj: StoredObject) -> str:
    """The sort id of a stored version (a pre-versioning object's fixed one)."""
    return obj.meta.version_id or new_sort_id(obj.entry.timestamp, fixed=True)


def check_version_id(version_id: str) -> None:
    """400 InvalidArgument for a version id this server cannot have issued."""
    if version_id != "null" and not SORT_ID.match(version_id):
        raise S3Error("InvalidArgument", "Invalid version id specified", ArgumentName="versionId",
                      ArgumentValue=version_id)


def is_versioned(bucket: Bucket | None) -> bool:
    """Whether writes to the bucket create versions (Enabled) or null versions (Suspended)."""
    return bucket is not None and bucket.versioning in ("Enabled", "Suspended")


def _prefix(bucket: str, key: str) -> bytes:
    return version_key(bucket, key, "")


def _is_version_of(entry: Entry, prefix: bytes) -> bool:
    """Whether an entry under ``bucket/key\\n`` is a version of that key (not of ``key\\n...``)."""
    return SORT_ID.match(entry.key[len(prefix):].decode(errors="replace")) is not None


async def _stored(backend: Backend, entry: Entry, data: bytes | None = None) -> StoredObject:
    meta = object_meta_decoder.decode(entry.meta)
    manifest = None
    if entry.cnumber > 0:
        manifest = manifest_decoder.decode(data if data is not None else await backend.read(entry))
    return StoredObject(entry, meta, manifest)


async def newest_version(backend: Backend, bucket: str, key: str, *, skip: str = "") -> StoredObject | None:
    """The newest version entry of a key (other than sort id ``skip``)."""
    prefix = _prefix(bucket, key)
    async for entry in scan_entries(backend, NS_VERSION, prefix, page=4):
        if _is_version_of(entry, prefix) and entry.key[len(prefix):].decode() != skip:
            return await _stored(backend, entry)
    return None


async def load_version(backend: Backend, bucket: str, key: str, version_id: str, *,
                       generation: float | None = None) -> StoredObject | None:
    """A version by its public id (or None); ``generation`` as for :func:`load_object`."""
    check_version_id(version_id)
    found: StoredObject | None = None
    if version_id == "null":
        prefix = _prefix(bucket, key)
        async for entry in scan_entries(backend, NS_VERSION, prefix, page=32):
            if _is_version_of(entry, prefix) and object_meta_decoder.decode(entry.meta).null_version:
                found = await _stored(backend, entry)
                break
        if found is None:
            current = await load_object(backend, bucket, key)
            found = current if current is not None and current.meta.version_id is None else None
    else:
        got = await backend.fetch(NS_VERSION, version_key(bucket, key, version_id))
        if got is not None and not got[0].tombstone:
            found = await _stored(backend, got[0], got[1])
    if found is not None and generation is not None and not in_generation(found.meta, generation):
        return None
    return found


async def _record_of(backend: Backend, obj: StoredObject) -> Record:
    entry = obj.entry
    return Record(await backend.read(entry), entry.cnumber, entry.csize, entry.md5 or None)


async def _put(backend: Backend, ns: int, record_key: bytes, meta: ObjectMeta, record: Record, *,
               timestamp: int | None = None, expect: int | None = None) -> Entry:
    entry, _ = await backend.put(ns, record_key, record.data, meta=meta_encoder.encode(meta), cnumber=record.cnumber,
                                 csize=record.csize, md5=record.md5, timestamp=timestamp, expect=expect)
    return entry


async def preserve_legacy(backend: Backend, bucket: str, key: str, current: StoredObject) -> None:
    """Copy a pre-versioning object into NS_VERSION as the null version (idempotent)."""
    meta = object_meta_decoder.decode(current.entry.meta)
    meta.version_id, meta.null_version = sort_id_of(current), True
    await _put(backend, NS_VERSION, version_key(bucket, key, meta.version_id), meta,
               await _record_of(backend, current), timestamp=current.entry.timestamp)


async def put_version(gw: Services, bucket: Bucket, key: str, meta: ObjectMeta,
                      body: Ingested | Manifest | bytes, *, headers: Mapping[str, str] | None = None) -> Entry:
    """Store a new version (or, with ``meta.delete_marker``, a delete marker) and make it current
    unless a newer version already is. ``headers``: judge If-Match/If-None-Match on the current
    version (compare-and-set, as :func:`~leofs.gateway.objects.write_if`). Answers the version entry;
    ``meta.version_id`` is set. Suspended buckets replace their null version."""
    backend = gw.backend
    suspended = bucket.versioning == "Suspended"
    meta.version_id, meta.null_version = new_sort_id(), suspended
    record = Record(b"") if meta.delete_marker else encode_record(meta, body)
    vkey, okey = version_key(bucket.name, key, meta.version_id), object_key(bucket.name, key)
    written: Entry | None = None
    for _ in range(_ATTEMPTS):
        current = await load_object(backend, bucket.name, key)
        if headers is not None:
            try:
                check_write_conditions(headers, visible_etag(current, meta.generation))
            except S3Error:
                if written is not None:
                    await backend.delete(NS_VERSION, vkey)
                raise
        if current is not None and current.meta.version_id is None:
            await preserve_legacy(backend, bucket.name, key, current)
        if written is None:
            written = await _put(backend, NS_VERSION, vkey, meta, record, timestamp=sort_id_time(meta.version_id))
        if current is not None and sort_id_of(current) < meta.version_id:
            break  # a newer version is current: this one is listed, not served
        try:
            if meta.delete_marker:
                # a tombstone even when the key looked absent: the compare-and-set fails if an older
                # version became current since, which is then judged (and dropped) on the next round
                await backend.delete(NS_OBJECT, okey, expect=expected_version(current))
            else:
                entry = await _put(backend, NS_OBJECT, okey, meta, record, timestamp=written.timestamp,
                                   expect=expected_version(current))
                await _yield_to_newer_marker(backend, bucket.name, key, meta.version_id, entry)
            break
        except WriteConflict:
            continue
    else:
        raise S3Error("ConditionalRequestConflict")
    assert written is not None
    if suspended:
        await drop_null_versions(gw, bucket.name, key, keep=meta.version_id)
    return written


async def _yield_to_newer_marker(backend: Backend, bucket: str, key: str, sort_id: str, entry: Entry) -> None:
    """After a version became current: a newer delete marker whose tombstone landed before this
    write (its compare-and-set held on the absent key, and this one on its tombstone) hides it:
    take the record back. A marker whose tombstone comes later fails its compare-and-set on this
    record instead, and drops it itself."""
    prefix = _prefix(bucket, key)
    async for newest in scan_entries(backend, NS_VERSION, prefix, page=4):
        if not _is_version_of(newest, prefix):
            continue
        if newest.key[len(prefix):].decode() < sort_id and object_meta_decoder.decode(newest.meta).delete_marker:
            try:
                await backend.delete(NS_OBJECT, object_key(bucket, key), expect=entry.clock)
            except WriteConflict:
                pass  # written again meanwhile: that write judges for itself
        return


async def drop_null_versions(gw: Services, bucket: str, key: str, *, keep: str) -> None:
    """Remove every null version of a key but ``keep`` (a suspended bucket's write replaces it)."""
    prefix = _prefix(bucket, key)
    stale = [entry async for entry in scan_entries(gw.backend, NS_VERSION, prefix, page=32)
             if _is_version_of(entry, prefix) and entry.key[len(prefix):].decode() != keep
             and object_meta_decoder.decode(entry.meta).null_version]
    for entry in stale:
        await remove_version(gw, bucket, key, await _stored(gw.backend, entry))


async def remove_version(gw: Services, bucket: str, key: str, version: StoredObject) -> None:
    """Delete a version for good: move the current record off it first (to the next newest
    version, or absent when that is a delete marker or there is none), then delete its entry, then
    free its blobs after the grace. ``version`` may be a pre-versioning object (only in NS_OBJECT)."""
    backend = gw.backend
    sid = sort_id_of(version)
    for _ in range(_ATTEMPTS):
        current = await load_object(backend, bucket, key)
        try:
            if current is not None and sort_id_of(current) == sid:
                await _make_current(backend, bucket, key, await newest_version(backend, bucket, key, skip=sid),
                                    current.entry.clock)
            elif current is None and version.meta.delete_marker:
                newest = await newest_version(backend, bucket, key)
                if newest is not None and newest.meta.version_id == sid:  # the marker hid the key
                    await _make_current(backend, bucket, key,
                                        await newest_version(backend, bucket, key, skip=sid), EXPECT_ABSENT)
            break
        except WriteConflict:
            continue
    else:
        raise S3Error("ConditionalRequestConflict")
    if version.meta.version_id is not None:  # (a pre-versioning object has no entry of its own)
        await backend.delete(NS_VERSION, version_key(bucket, key, sid))
    if version.manifest is not None:
        free_later(gw, bucket, key, version.manifest.blobs)


async def _make_current(backend: Backend, bucket: str, key: str, successor: StoredObject | None, expect: int) -> None:
    okey = object_key(bucket, key)
    if successor is None or successor.meta.delete_marker:
        if expect != EXPECT_ABSENT:
            await backend.delete(NS_OBJECT, okey, expect=expect)
        return
    await _put(backend, NS_OBJECT, okey, successor.meta, await _record_of(backend, successor),
               timestamp=successor.entry.timestamp, expect=expect)


async def rewrite_meta(backend: Backend, bucket: str, key: str, obj: StoredObject, meta: ObjectMeta) -> None:
    """Rewrite the metadata of a version (an ACL change) in its NS_VERSION entry and, when it is
    current, in the NS_OBJECT record; each keeps its data and timestamp. The clock is the stored one
    plus one, so a write that lands meanwhile wins over the rewrite."""
    sid = sort_id_of(obj)
    record = await _record_of(backend, obj)
    targets: list[tuple[int, bytes, Entry]] = []
    if meta.version_id is not None:
        got = await backend.head(NS_VERSION, version_key(bucket, key, sid))
        if got is not None:
            targets.append((NS_VERSION, version_key(bucket, key, sid), got))
    current = await load_object(backend, bucket, key)
    if current is not None and sort_id_of(current) == sid:
        targets.append((NS_OBJECT, object_key(bucket, key), current.entry))
    for ns, record_key, entry in targets:
        await backend.put(ns, record_key, record.data, meta=meta_encoder.encode(meta), cnumber=record.cnumber,
                          csize=record.csize, md5=record.md5, clock=entry.clock + 1, timestamp=entry.timestamp)


def version_headers(bucket: Bucket | None, meta: ObjectMeta) -> dict[str, str]:
    """``x-amz-version-id`` (and ``x-amz-delete-marker``) for an answer about a version."""
    if meta.version_id is None and not is_versioned(bucket):
        return {}
    headers = {"x-amz-version-id": public_id(meta)}
    if meta.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return headers


async def undo_version(gw: Services, bucket: str, key: str, sort_id: str) -> None:
    """Take back a version written into a fenced bucket generation (and its blobs)."""
    got = await gw.backend.fetch(NS_VERSION, version_key(bucket, key, sort_id))
    if got is not None and not got[0].tombstone:
        await remove_version(gw, bucket, key, await _stored(gw.backend, got[0], got[1]))


async def marker_headers(backend: Backend, bucket: Bucket | None, key: str) -> dict[str, str]:
    """For a 404 of a versioned bucket's key: the headers saying its newest version is a delete marker."""
    if bucket is None or not is_versioned(bucket):
        return {}
    newest = await newest_version(backend, bucket.name, key)
    if newest is None or not newest.meta.delete_marker or not in_generation(newest.meta, bucket.created):
        return {}
    return version_headers(bucket, newest.meta)


async def requested_version(req: S3Request, backend: Backend, version_id: str) -> StoredObject:
    """The version ``?versionId`` names, after the object ACL check: 404 NoSuchVersion (to callers
    who may list the bucket, else 403), 405 MethodNotAllowed for a delete marker."""
    bucket = req.require_bucket()
    obj = await load_version(backend, bucket.name, req.key or "", version_id, generation=bucket.created)
    if obj is None:
        if req.object_acl_check is not None and not may_list(bucket, req.access_key):
            raise S3Error("AccessDenied")
        raise S3Error("NoSuchVersion", Key=req.key or "", VersionId=version_id)
    if obj.meta.delete_marker:
        headers = version_headers(bucket, obj.meta)
        headers["Last-Modified"] = http_date(obj.entry.timestamp)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.",
                      headers=headers, Method=req.method, ResourceType="DeleteMarker")
    return check_object_acl(req, obj)


async def requested_object(req: S3Request, backend: Backend) -> StoredObject:
    """The object a request names (``?versionId``, else the current version), after the object ACL
    check; a missing current version whose newest version is a delete marker says so in headers."""
    version_id = req.query.get("versionId")
    if version_id is not None:
        return await requested_version(req, backend, version_id)
    bucket = req.require_bucket()
    return await checked_current(req, backend, await load_object(backend, bucket.name, req.key or "",
                                                                 generation=bucket.created))


async def checked_current(req: S3Request, backend: Backend, obj: StoredObject | None) -> StoredObject:
    """:func:`check_object_acl` of a current version, with the delete-marker headers on its 404."""
    try:
        return check_object_acl(req, obj)
    except S3Error as err:
        if err.code == "NoSuchKey":
            err.headers.update(await marker_headers(backend, req.bucket_record, req.key or ""))
        raise


async def finish_version(gw: Services, bucket: str, key: str, upload: UploadMeta) -> bool:
    """CompleteMultipartUpload's object write in a versioned bucket: the version chosen when the
    upload was marked completing (``upload.meta.version_id``, so a takeover writes the same one),
    then the current record if the object is still at ``upload.base`` and no newer version is
    current. False (nothing left behind) when the object moved: the caller judges again."""
    backend = gw.backend
    meta = upload.meta
    assert meta.version_id is not None and upload.blobs is not None
    current = await load_object(backend, bucket, key)
    if current is not None and current.meta.version_id == meta.version_id:
        return True  # written already by an earlier finisher of this completion
    if (current.entry.clock if current is not None else EXPECT_ABSENT) != upload.base:
        return False
    if current is not None and current.meta.version_id is None:
        await preserve_legacy(backend, bucket, key, current)
    record = encode_record(meta, Manifest(upload.blobs))
    vkey = version_key(bucket, key, meta.version_id)
    written = await _put(backend, NS_VERSION, vkey, meta, record, timestamp=sort_id_time(meta.version_id))
    if current is None or sort_id_of(current) > meta.version_id:
        try:
            entry = await _put(backend, NS_OBJECT, object_key(bucket, key), meta, record, timestamp=written.timestamp,
                               expect=upload.base)
        except WriteConflict:
            await backend.delete(NS_VERSION, vkey)
            return False
        await _yield_to_newer_marker(backend, bucket, key, meta.version_id, entry)
    if meta.null_version:
        await drop_null_versions(gw, bucket, key, keep=meta.version_id)
    return True
