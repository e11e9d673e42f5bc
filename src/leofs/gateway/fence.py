"""Bucket generations: a write in flight never lands in a deleted bucket.

A bucket's generation is its ``created`` time (the manager sets it once, at creation; a bucket
created again under the same name gets a later one). Writes record the generation they were made
under (``ObjectMeta.generation``) and check the bucket's fence record (NS_FENCE, in storage, where
the object records are) before and after their record write; DeleteBucket writes the fence
*before* it checks that the bucket is empty:

    write:         write record  ->  read fence
    DeleteBucket:  write fence   ->  list the bucket

so at least one of the two sees the other: either the write finds its generation fenced (it undoes
itself and answers NoSuchBucket) or DeleteBucket finds the record (BucketNotEmpty, and the fence is
lifted). A write that finds a DeleteBucket in progress waits for its outcome. A DeleteBucket that
dies half-way leaves a "deleting" fence: after :data:`DELETE_LEASE` seconds it counts only when the
bucket is gone. A write whose process dies before it could take itself back leaves a record of the
deleted generation: reads, listings and DeleteBucket judge records by generation
(:func:`in_generation`), so a bucket created again under the name never sees it, and gc deletes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from leofs.accounts import NotFound
from leofs.gateway.backend import Backend, Replaced, WriteConflict, scan_entries
from leofs.gateway.context import Services
from leofs.gateway.grace import free_later
from leofs.gateway.keys import NS_FENCE, NS_OBJECT, NS_UPLOAD, NS_VERSION, bucket_prefix, fence_key, object_key
from leofs.gateway.records import (
    Blob,
    Fence,
    ObjectMeta,
    fence_decoder,
    meta_encoder,
    object_meta_decoder,
    upload_decoder,
)
from leofs.s3.errors import S3Error
from leofs.storage.model import Entry

if TYPE_CHECKING:
    from leofs.accounts import Bucket

#: how long a DeleteBucket in progress fences writes without a bucket deletion to show for it
DELETE_LEASE = 60.0
#: deleted generations remembered per bucket name (a write would need a view of the bucket older
#: than this many delete-and-create cycles to slip through; a gateway's view is about 1 s old)
KEEP_DELETED = 16


async def read_fence(gw: Services, bucket: str) -> tuple[Entry | None, Fence]:
    entry = await gw.backend.head(NS_FENCE, fence_key(bucket))
    return entry, (Fence() if entry is None else fence_decoder.decode(entry.meta))


async def fenced(gw: Services, bucket: str, generation: float) -> bool:
    """Whether writes made under ``generation`` of ``bucket`` must not stand (it was deleted, or a
    DeleteBucket of it is in progress)."""
    if not generation:
        return False
    delay = 0.01
    while True:
        _, fence = await read_fence(gw, bucket)
        if generation in fence.deleted:
            return True
        if fence.deleting != generation:
            return False
        if time.time() - fence.started / 1e6 >= DELETE_LEASE:
            break
        # a DeleteBucket is deciding: it saw our record (and lifts the fence) or it did not (and
        # deletes the bucket); its outcome is ours
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    current = gw.control.bucket(bucket)  # a DeleteBucket that died: did it delete the bucket?
    return current is None or current.created != generation


async def begin_delete(gw: Services, bucket: Bucket) -> None:
    """Fence the bucket's generation before DeleteBucket checks that it is empty."""
    _, fence = await read_fence(gw, bucket.name)
    await _write(gw, bucket.name, Fence(fence.deleted, bucket.created, time.time_ns() // 1000))


async def end_delete(gw: Services, bucket: Bucket, *, deleted: bool) -> None:
    """Lift the fence of a DeleteBucket that found the bucket not empty, or record the deletion."""
    _, fence = await read_fence(gw, bucket.name)
    gone = fence.deleted
    if deleted and bucket.created not in gone:
        gone = [*gone, bucket.created][-KEEP_DELETED:]
    deleting = fence.deleting if fence.deleting != bucket.created else 0.0  # another DeleteBucket's stays
    await _write(gw, bucket.name, Fence(gone, deleting, fence.started if deleting else 0))


async def bucket_is_empty(backend: Backend, bucket: Bucket, *, uploads: bool = True) -> bool:
    """Whether the bucket holds no object, no version and (``uploads``) no open upload of its
    generation (DeleteBucket's emptiness check). Records of a deleted generation of its name do not
    count: they are garbage for the orphan collector (``leofs.gateway.maintenance``)."""
    prefix = bucket_prefix(bucket.name)
    async for entry in scan_entries(backend, NS_OBJECT, prefix, page=32):
        if in_generation(object_meta_decoder.decode(entry.meta), bucket.created):
            return False
    async for entry in scan_entries(backend, NS_VERSION, prefix, page=32):  # versions and delete markers
        if in_generation(object_meta_decoder.decode(entry.meta), bucket.created):
            return False
    if not uploads:
        return True
    async for entry in scan_entries(backend, NS_UPLOAD, prefix, page=32):
        if in_generation(upload_decoder.decode(entry.meta).meta, bucket.created):
            return False
    return True


async def delete_bucket(gw: Services, bucket: Bucket,
                        clear_uploads: Callable[[Services, Bucket], Awaitable[None]] | None = None) -> None:
    """Delete an empty bucket, the one way S3 DeleteBucket and ``leofs adm delete-bucket`` share:
    fence the generation, check emptiness, delete, record the deletion. A write in flight either
    shows in the emptiness check or sees the fence after its record landed and takes itself back.
    ``clear_uploads`` (S3 DeleteBucket): a bucket without objects has its open uploads aborted
    (behind the fence, so no new one starts) instead of counting as not empty.
    Raises S3Error BucketNotEmpty, or NoSuchBucket when it is gone meanwhile."""
    await begin_delete(gw, bucket)
    deleted = False
    try:
        if clear_uploads is not None and await bucket_is_empty(gw.backend, bucket, uploads=False):
            await clear_uploads(gw, bucket)
        if not await bucket_is_empty(gw.backend, bucket):
            raise S3Error("BucketNotEmpty", BucketName=bucket.name)
        try:
            await gw.control.delete_bucket(bucket.name)
        except NotFound:
            raise S3Error("NoSuchBucket", BucketName=bucket.name) from None
        deleted = True
    finally:
        await end_delete(gw, bucket, deleted=deleted)


async def _write(gw: Services, bucket: str, fence: Fence) -> None:
    await gw.backend.put(NS_FENCE, fence_key(bucket), b"", meta=meta_encoder.encode(fence))


async def undo_write(gw: Services, bucket: str, key: str, entry: Entry, replaced: Replaced | None,
                     blobs: list[Blob]) -> None:
    """Take back an object write that landed in a fenced generation: put back the version it
    replaced (it may be another generation's object), else delete it; free the write's blobs.
    Each step is a compare-and-set on the version written, so a later write is never undone."""
    backend = gw.backend
    object_record = object_key(bucket, key)
    try:
        previous = replaced.entry if replaced is not None and not replaced.entry.tombstone else None
        if previous is None:
            await backend.delete(NS_OBJECT, object_record, expect=entry.clock)
        else:
            data = replaced.data if replaced is not None and replaced.data is not None else await backend.read(previous)
            await backend.put(NS_OBJECT, object_record, data, meta=previous.meta, cnumber=previous.cnumber,
                              csize=previous.csize, md5=previous.md5 or None, expect=entry.clock)
    except WriteConflict:
        pass  # written again since: that write stands on its own
    free_later(gw, bucket, key, blobs)


def in_generation(meta: ObjectMeta, created: float) -> bool:
    """Whether an object record belongs to the bucket generation ``created``. A record of an earlier
    bucket of the same name (left by a write whose process died before it could take itself back)
    does not: reads, listings and conditions treat it as absent. A record written before generations
    were recorded (generation 0) belongs to every generation."""
    return not meta.generation or meta.generation == created


def stamp_generation(meta: ObjectMeta, record: Bucket | None) -> float:
    """Stamp ``meta`` with the generation of the bucket the request addresses."""
    meta.generation = record.created if record is not None else 0.0
    return meta.generation
