"""The state of one multipart upload, changed only by compare-and-set writes of its record.

The upload record (NS_UPLOAD) is the serialisation point of everything done to one upload, in
the storage writer (or the key's coordinator) where writes are serialised, so it holds with worker
processes and gateways that share nothing:

- UploadPart stores its part record, then rewrites the upload record conditioned on the version it
  read ("touch"): a Complete that listed the parts before that fails its own compare-and-set and
  lists them again. When the touch finds the upload no longer open, the part lost the race: the
  blobs the completion did not choose are freed, the others are left alone.
- Complete marks the record "completing" with the chosen parts, conditioned on the version it read
  before listing the parts. Only the Complete that wins writes the object (a compare-and-set on the
  object version it judged the conditions on), records the result in NS_DONE and removes the upload.
  A Complete that finds it "completing" waits for that result; one that finds it completed answers
  the same ETag (S3's idempotent Complete).
- Abort deletes the record conditioned on the version it read, then frees the parts: an Abort and a
  Complete of one upload can never both succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec

from leofs.accounts import Bucket
from leofs.gateway.backend import Backend, WriteConflict, scan_entries
from leofs.gateway.blobs import delete_blob
from leofs.gateway.context import Services
from leofs.gateway.fence import fenced, in_generation, undo_write
from leofs.gateway.grace import free_later
from leofs.gateway.keys import NS_DONE, NS_PART, NS_UPLOAD, bucket_prefix, done_key, part_key, upload_key
from leofs.gateway.objects import load_object, replaced_object, write_object
from leofs.gateway.records import Blob, Manifest, UploadMeta, blob_decoder, meta_encoder, upload_decoder
from leofs.gateway.versions import finish_version, undo_version
from leofs.s3.errors import S3Error
from leofs.storage.model import Entry

log = logging.getLogger("leofs.gateway.uploads")

#: a "completing" record older than this is taken over by a repeated Complete (its first Complete
#: died half-way); younger, a repeat waits for the result
COMPLETE_LEASE = 60.0
#: how long a repeated Complete waits for the result of the one in progress
WAIT_FOR_RESULT = 30.0


def encode_record(upload: UploadMeta) -> tuple[bytes, bytes]:
    """An upload record's (data, meta). The chosen parts of a completing or completed upload go in
    the data: up to 10,000 of them, far more than a needle's metadata may hold. The metadata keeps
    the rest (what listings and expiry read) and never grows with the part count."""
    if upload.numbers is None and upload.blobs is None:
        return b"", meta_encoder.encode(upload)
    summary = msgspec.structs.replace(upload, numbers=None, blobs=None)
    return meta_encoder.encode(upload), meta_encoder.encode(summary)


async def _read_record(backend: Backend, ns: int, key: bytes) -> tuple[Entry, UploadMeta] | None:
    got = await backend.fetch(ns, key)
    if got is None or got[0].tombstone:
        return None
    entry, data = got
    return entry, upload_decoder.decode(data or entry.meta)


async def read_upload(backend: Backend, bucket: str, key: str, upload_id: str) -> tuple[Entry, UploadMeta] | None:
    """The upload's record and its current version (for a compare-and-set), or None."""
    if not upload_id:
        return None
    return await _read_record(backend, NS_UPLOAD, upload_key(bucket, key, upload_id))


async def read_done(backend: Backend, bucket: str, key: str, upload_id: str) -> UploadMeta | None:
    """A completed upload's result, while it is kept."""
    if not upload_id:
        return None
    got = await _read_record(backend, NS_DONE, done_key(bucket, key, upload_id))
    return None if got is None else got[1]


async def write_upload(backend: Backend, bucket: str, key: str, upload: UploadMeta, *, expect: int) -> Entry:
    """Rewrite the upload record if it is still at version ``expect`` (else WriteConflict)."""
    data, meta = encode_record(upload)
    entry, _ = await backend.put(NS_UPLOAD, upload_key(bucket, key, upload.upload_id), data, meta=meta,
                                 expect=expect)  # fmt: skip
    return entry


async def parts_of(backend: Backend, bucket: str, key: str, upload_id: str) -> dict[int, Blob]:
    """The upload's stored parts by number."""
    prefix = f"{bucket}/{key}\n{upload_id}\n".encode()
    return {int(e.key[len(prefix):]): blob_decoder.decode(e.meta)
            async for e in scan_entries(backend, NS_PART, prefix)}  # fmt: skip


async def store_part(gw: Services, bucket: str, key: str, upload_id: str, number: int, blob: Blob) -> None:
    """Record an uploaded part's blob, then touch the upload (see the module's text); raises
    NoSuchUpload when the upload was completed or aborted meanwhile."""
    backend = gw.backend
    record = part_key(bucket, key, upload_id, number)
    _, replaced = await backend.put(NS_PART, record, b"", meta=meta_encoder.encode(blob))
    old = None
    if replaced is not None and not replaced.entry.tombstone:
        old = blob_decoder.decode(replaced.entry.meta)
    while True:
        got = await read_upload(backend, bucket, key, upload_id)
        if got is None or got[1].state != "open":
            break
        entry, upload = got
        try:
            await write_upload(backend, bucket, key, upload, expect=entry.clock)
        except WriteConflict:
            continue  # another part or a Complete moved it: look again
        if old is not None and old.blob_id != blob.blob_id:  # the re-uploaded part's former blob
            await delete_blob(backend, bucket, key, old)
        return
    # Completed or aborted meanwhile: free what the completion did not choose, drop our record.
    chosen = {b.blob_id for b in (got[1].blobs or [])} if got is not None else set()
    done = await read_done(backend, bucket, key, upload_id)
    chosen |= {b.blob_id for b in (done.blobs or [])} if done is not None else set()
    if blob.blob_id not in chosen:
        await backend.delete(NS_PART, record)
    for candidate in (blob, old):
        if candidate is not None and candidate.blob_id not in chosen:
            await delete_blob(backend, bucket, key, candidate)
    raise S3Error("NoSuchUpload", UploadId=upload_id)


async def finish(gw: Services, bucket: str, key: str, entry: Entry, upload: UploadMeta) -> bool:
    """Carry out a "completing" upload: write the object, record the result, remove the upload.

    False when nothing was written because the object is no longer the version ``base`` names: the
    caller judges its conditions again on the new version and moves ``base``, or reopens the upload.
    """
    backend = gw.backend
    assert upload.blobs is not None
    used = {b.blob_id for b in upload.blobs}
    if upload.meta.version_id is not None:
        if not await finish_version(gw, bucket, key, upload):
            return False
        if await fenced(gw, bucket, upload.meta.generation):  # the bucket was deleted meanwhile
            await undo_version(gw, bucket, key, upload.meta.version_id)
            await _remove(gw, bucket, key, entry, upload, set())
            raise S3Error("NoSuchBucket", BucketName=bucket)
        return await _record_result(gw, bucket, key, entry, upload, used)
    current = await load_object(backend, bucket, key)
    # written already by an earlier finisher of this same completion (one that died before the end)
    ours = current is not None and current.manifest is not None and bool(
        used & {b.blob_id for b in current.manifest.blobs})
    if not ours:
        if (current.entry.clock if current is not None else 0) != upload.base:
            return False
        try:
            written, replaced = await write_object(backend, bucket, key, upload.meta, Manifest(upload.blobs),
                                                   expect=upload.base)
        except WriteConflict:
            return False
        if await fenced(gw, bucket, upload.meta.generation):  # the bucket was deleted meanwhile
            await undo_write(gw, bucket, key, written, replaced, upload.blobs)
            await _remove(gw, bucket, key, entry, upload, set())
            raise S3Error("NoSuchBucket", BucketName=bucket)
        old = await replaced_object(backend, replaced)
        if old is not None and old.manifest is not None and old.meta.version_id is None:
            # free what the write replaced, never a blob the manifest just written uses
            free_later(gw, bucket, key, [b for b in old.manifest.blobs if b.blob_id not in used])
    return await _record_result(gw, bucket, key, entry, upload, used)


async def _record_result(gw: Services, bucket: str, key: str, entry: Entry, upload: UploadMeta,
                         used: set[str]) -> bool:
    backend = gw.backend
    data, meta = encode_record(msgspec.structs.replace(upload, state="completed"))
    await backend.put(NS_DONE, done_key(bucket, key, upload.upload_id), data, meta=meta)
    await _remove(gw, bucket, key, entry, upload, used)
    return True


async def reopen(gw: Services, bucket: str, key: str, entry: Entry, upload: UploadMeta) -> None:
    """Give a "completing" upload back (its Complete failed): open again, as after any refused Complete."""
    with contextlib.suppress(WriteConflict):
        await write_upload(gw.backend, bucket, key, msgspec.structs.replace(upload, state="open", numbers=None,
                                                                            blobs=None, base=0), expect=entry.clock)


async def _remove(gw: Services, bucket: str, key: str, entry: Entry, upload: UploadMeta, keep: set[str]) -> None:
    """Remove a finished upload's record and part records; free the parts' blobs not in ``keep``."""
    backend = gw.backend
    try:
        await backend.delete(NS_UPLOAD, upload_key(bucket, key, upload.upload_id), expect=entry.clock)
    except WriteConflict:
        log.info("upload %s of %s/%s was finished twice", upload.upload_id, bucket, key)
    for number, blob in (await parts_of(backend, bucket, key, upload.upload_id)).items():
        await backend.delete(NS_PART, part_key(bucket, key, upload.upload_id, number))
        if blob.blob_id not in keep:
            await delete_blob(backend, bucket, key, blob)


async def await_result(gw: Services, bucket: str, key: str, upload_id: str) -> UploadMeta | None:
    """The result of a Complete in progress (or, past its lease, finished by us); None when the
    upload is open again (that Complete failed)."""
    deadline = time.monotonic() + WAIT_FOR_RESULT
    delay = 0.02
    while True:
        done = await read_done(gw.backend, bucket, key, upload_id)
        if done is not None:
            return done
        got = await read_upload(gw.backend, bucket, key, upload_id)
        if got is None:
            done = await read_done(gw.backend, bucket, key, upload_id)
            if done is not None:
                return done
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        entry, upload = got
        if upload.state == "open":
            return None
        if time.time() - entry.timestamp / 1e6 > COMPLETE_LEASE:
            try:  # the Complete that marked it died half-way: take over (one taker wins)
                entry = await write_upload(gw.backend, bucket, key, upload, expect=entry.clock)
            except WriteConflict:
                continue
            if not await finish(gw, bucket, key, entry, upload):
                await reopen(gw, bucket, key, entry, upload)  # its conditions are unknown: the client retries
            continue
        if time.monotonic() > deadline:
            raise S3Error("ServiceUnavailable", "The upload is being completed; please retry.")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def abort(gw: Services, bucket: str, key: str, upload_id: str) -> None:
    """Remove an open upload and free its parts; NoSuchUpload when it is gone or being completed."""
    backend = gw.backend
    while True:
        got = await read_upload(backend, bucket, key, upload_id)
        if got is None or got[1].state != "open":
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        try:
            await backend.delete(NS_UPLOAD, upload_key(bucket, key, upload_id), expect=got[0].clock)
        except WriteConflict:
            continue
        break
    # never touch the blobs of an object completed from this upload (records of older versions)
    current = await load_object(backend, bucket, key)
    keep = {b.blob_id for b in current.manifest.blobs} if current and current.manifest else set()
    for number, blob in (await parts_of(backend, bucket, key, upload_id)).items():
        await backend.delete(NS_PART, part_key(bucket, key, upload_id, number))
        if blob.blob_id not in keep:
            await delete_blob(backend, bucket, key, blob)


async def abort_upload(gw: Services, bucket: str, key: str, upload_id: str) -> None:
    """Expire an upload: abort it if open; if a Complete of it died half-way, finish that."""
    got = await read_upload(gw.backend, bucket, key, upload_id)
    if got is None:
        return
    if got[1].state == "open":
        with contextlib.suppress(S3Error):  # completed or aborted meanwhile
            await abort(gw, bucket, key, upload_id)
        return
    with contextlib.suppress(S3Error):
        await await_result(gw, bucket, key, upload_id)


async def abort_all(gw: Services, bucket: Bucket) -> None:
    """Abort every open upload of ``bucket``'s generation (DeleteBucket of a bucket that holds
    only uploads in progress). An upload being completed makes an object: BucketNotEmpty. An
    UploadPart in flight finds its upload gone when it touches it, and frees its part."""
    prefix = bucket_prefix(bucket.name)
    async for entry in scan_entries(gw.backend, NS_UPLOAD, prefix, page=100):
        upload = upload_decoder.decode(entry.meta)
        if not in_generation(upload.meta, bucket.created):
            continue
        key, _, upload_id = entry.key[len(prefix):].decode("utf-8", "surrogateescape").rpartition("\n")
        if upload.state != "open":
            raise S3Error("BucketNotEmpty", BucketName=bucket.name)
        with contextlib.suppress(S3Error):  # completed or aborted meanwhile: the emptiness check decides
            await abort(gw, bucket.name, key, upload_id)
