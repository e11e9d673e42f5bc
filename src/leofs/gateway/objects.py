"""Reading and writing S3 objects through the backend: records, manifests, and body streaming."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import msgspec
from aiohttp import web

from leofs.gateway.backend import Backend, Replaced, WriteConflict
from leofs.gateway.blobs import Ingested
from leofs.gateway.context import Services
from leofs.gateway.fence import in_generation
from leofs.gateway.grace import free_later
from leofs.gateway.keys import NS_CHUNK, NS_OBJECT, chunk_key, object_key
from leofs.gateway.records import Blob, Manifest, ObjectMeta, manifest_decoder, meta_encoder, object_meta_decoder
from leofs.internal.tls import is_tls
from leofs.s3.conditions import check_write_conditions
from leofs.s3.errors import S3Error
from leofs.storage.model import EXPECT_ABSENT, CorruptData, Entry

log = logging.getLogger("leofs.gateway.objects")


@dataclass(slots=True)
class StoredObject:
    """An object as found in storage."""

    entry: Entry
    meta: ObjectMeta
    manifest: Manifest | None

    @property
    def size(self) -> int:
        return self.meta.size

    @property
    def etag(self) -> str:
        return self.meta.etag

    @property
    def last_modified(self) -> int:
        """Microseconds since the epoch."""
        return self.entry.timestamp

    @property
    def quoted_etag(self) -> str:
        return f'"{self.meta.etag}"'


async def load_object(backend: Backend, bucket: str, key: str, *, hint: bool = False,
                      generation: float | None = None) -> StoredObject | None:
    """The current version of an object, or None (``hint``: see :class:`Backend`).

    ``generation``: the ``created`` time of the bucket the request addresses; a record of another
    generation of the bucket counts as absent (see :func:`~leofs.gateway.fence.in_generation`).
    None: whatever record is stored (writers, whose compare-and-set is on the stored version)."""
    entry = await backend.head(NS_OBJECT, object_key(bucket, key), hint=hint)
    if entry is None:
        return None
    meta = object_meta_decoder.decode(entry.meta)
    if generation is not None and not in_generation(meta, generation):
        return None
    manifest = None
    if entry.cnumber > 0:
        manifest = manifest_decoder.decode(await backend.read(entry))
    return StoredObject(entry, meta, manifest)


async def replaced_object(backend: Backend, replaced: Replaced | None) -> StoredObject | None:
    """The object a write replaced, from what the backend reported, when it has chunks to free:
    None if unknown, gone, or stored inline (then there is nothing to free and nothing is decoded).
    Unknown (a cluster coordinator without a replica of the key) leaves them to the orphan collector."""
    if replaced is None or replaced.entry.tombstone or replaced.entry.cnumber == 0:
        return None
    previous = replaced.entry
    try:
        data = replaced.data if replaced.data is not None else await backend.read(previous)
        manifest = manifest_decoder.decode(data)
    except (S3Error, msgspec.DecodeError):  # compacted away meanwhile: the orphan collector frees them
        return None
    return StoredObject(previous, object_meta_decoder.decode(previous.meta), manifest)


def expected_version(obj: StoredObject | None) -> int:
    """The ``expect`` of a write that must replace exactly ``obj`` (absent: no live version)."""
    return obj.entry.clock if obj is not None else EXPECT_ABSENT


async def write_if(
    backend: Backend, bucket: str, key: str, headers: Mapping[str, str], meta: ObjectMeta,
    body: Ingested | Manifest | bytes, *, attempts: int = 5,
) -> tuple[Entry, Replaced | None]:
    """Write an object under its conditional headers (If-Match, If-None-Match): the conditions are
    judged on the current version, and the write is a compare-and-set on that very version, so a
    write that slipped in between is noticed (by the writer that serialises the key's writes) and
    the conditions are judged again on it. Raises the S3 error of a condition that fails. A record of
    another bucket generation than ``meta``'s counts as absent, though the write replaces it."""
    for _ in range(attempts):
        current = await load_object(backend, bucket, key)
        check_write_conditions(headers, visible_etag(current, meta.generation))
        try:
            return await write_object(backend, bucket, key, meta, body, expect=expected_version(current))
        except WriteConflict:
            continue
    raise S3Error("ConditionalRequestConflict")


def visible_etag(obj: StoredObject | None, generation: float) -> str | None:
    """The ETag write conditions are judged on: None when there is no object of ``generation``."""
    return obj.etag if obj is not None and in_generation(obj.meta, generation) else None


def fetched_object(got: tuple[Entry, bytes] | None, *,
                   generation: float) -> tuple[StoredObject, bytes | None] | None:
    """The object of bucket generation ``generation`` (as for :func:`load_object`) in what
    ``backend.fetch`` of its record answered (one call to a remote backend) and, when it is stored
    inline, its body."""
    if got is None:
        return None
    entry, data = got
    if entry.tombstone:
        return None
    meta = object_meta_decoder.decode(entry.meta)
    if not in_generation(meta, generation):
        return None
    if entry.cnumber > 0:
        return StoredObject(entry, meta, manifest_decoder.decode(data)), None
    return StoredObject(entry, meta, None), data


async def write_object(
    backend: Backend, bucket: str, key: str, meta: ObjectMeta, body: Ingested | Manifest | bytes,
    *, expect: int | None = None,
) -> tuple[Entry, Replaced | None]:
    """Store an object record: inline data, or a manifest of blobs (``cnumber`` > 0). Answers the
    entry written and the one it replaced when the backend reports it (see :meth:`Backend.put`);
    ``expect`` makes it a compare-and-set (raises WriteConflict)."""
    record = encode_record(meta, body)
    return await backend.put(NS_OBJECT, object_key(bucket, key), record.data, meta=meta_encoder.encode(meta),
                             cnumber=record.cnumber, csize=record.csize, md5=record.md5, expect=expect)


@dataclass(slots=True, frozen=True)
class Record:
    """An object's data as stored in its record: the inline body, or its encoded manifest."""

    data: bytes
    cnumber: int = 0
    csize: int = 0
    md5: bytes | None = None


def encode_record(meta: ObjectMeta, body: Ingested | Manifest | bytes) -> Record:
    """The record data of an object: inline bytes, or a manifest of blobs (``cnumber`` > 0)."""
    if isinstance(body, Manifest):
        manifest = body
    elif isinstance(body, Ingested) and body.blob is not None:
        manifest = Manifest([body.blob])
    else:
        data = body if isinstance(body, bytes) else (body.inline or b"")
        return Record(data, md5=bytes.fromhex(meta.etag) if len(meta.etag) == 32 else None)
    count = sum(blob.count for blob in manifest.blobs) or 1
    chunk = manifest.blobs[0].chunk_size if manifest.blobs else 0
    return Record(meta_encoder.encode(manifest), count, chunk)


def forget_later(gw: Services, bucket: str, key: str, old: StoredObject | None) -> None:
    """Free the chunks of a replaced version, after the grace (see :mod:`leofs.gateway.grace`)."""
    if old is None or old.manifest is None or old.meta.version_id is not None:
        return  # (a version's current record shares its blobs with the version's own entry)
    free_later(gw, bucket, key, old.manifest.blobs)


@dataclass(slots=True, frozen=True)
class Extent:
    """A piece of an object's body: ``length`` bytes at ``offset`` of chunk ``index`` of ``blob``."""

    blob: Blob
    index: int
    offset: int
    length: int


def extents(manifest: Manifest, start: int, end: int) -> Iterator[Extent]:
    """The chunk pieces covering bytes ``start..end`` (inclusive) of a manifest's object.

    Blobs (parts) may differ in size; within a blob, chunks are ``chunk_size`` except the last.
    """
    position = 0
    for blob in manifest.blobs:
        blob_end = position + blob.size
        if blob_end <= start:
            position = blob_end
            continue
        if position > end:
            return
        first = max(start, position) - position
        last = min(end, blob_end - 1) - position
        index = first // blob.chunk_size
        while index * blob.chunk_size <= last:
            chunk_start = index * blob.chunk_size
            lo = max(first, chunk_start)
            hi = min(last, chunk_start + blob.chunk_size - 1)
            yield Extent(blob, index + 1, lo - chunk_start, hi - lo + 1)
            index += 1
        position = blob_end


async def send_body(
    request: web.Request,
    response: web.StreamResponse,
    backend: Backend,
    bucket: str,
    key: str,
    obj: StoredObject,
    start: int,
    end: int,
    verify_below: int,
) -> None:
    """Write bytes ``start..end`` of an object to a prepared response (sendfile when possible)."""
    if end < start:
        return
    if obj.manifest is None:
        await _send_entry(request, response, backend, obj.entry, start, end - start + 1, verify_below)
        return

    native = _native_sendfile(request)

    async def locate(extent: Extent) -> Located:
        """The chunk's entry, and its bytes when they live on another host (read ahead), or its
        file when a replica on this host handed it over (a cluster's local data socket)."""
        entry = await backend.head(NS_CHUNK, chunk_key(bucket, key, extent.blob.blob_id, extent.index))
        if entry is None:
            log.error("chunk %d of %s/%s (blob %s) is missing", extent.index, bucket, key, extent.blob.blob_id)
            raise ConnectionResetError("missing chunk")
        if backend.local:
            return entry, None, None  # sent with sendfile: the kernel reads ahead
        if native and entry.size >= verify_below:
            opened = await backend.open_data(entry)
            if opened is not None:
                return entry, None, opened
        return entry, await backend.read(entry, extent.offset, extent.length), None

    # Read-ahead of one chunk: the next chunk is located while this one goes to the client.
    pending: asyncio.Future[Located] | None = None
    current: asyncio.Future[Located] | None = None
    previous: Extent | None = None
    try:
        for extent in extents(obj.manifest, start, end):
            current, sending = pending, previous
            pending, previous = asyncio.ensure_future(locate(extent)), extent
            if current is not None and sending is not None:
                await _send_located(request, response, backend, await current, sending, verify_below)
        if pending is not None and previous is not None:
            current, pending = pending, None
            await _send_located(request, response, backend, await current, previous, verify_below)
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        for located in (current, pending):  # a file located but never sent (client gone): close it
            if located is not None and located.done() and not located.cancelled() and located.exception() is None:
                opened = located.result()[2]
                if opened is not None:
                    opened[0].close()


#: a chunk's entry, and its bytes (read ahead) or its open file (data offset, size), or neither
Located = tuple[Entry, bytes | None, tuple[BinaryIO, int, int] | None]


async def _send_located(request: web.Request, response: web.StreamResponse, backend: Backend,
                        located: Located, extent: Extent, verify_below: int) -> None:
    entry, data, opened = located
    if data is not None:
        await response.write(data)
    elif opened is not None:
        await _sendfile(request, opened, extent.offset, extent.length)
    else:
        await _send_entry(request, response, backend, entry, extent.offset, extent.length, verify_below)


def _native_sendfile(request: web.Request) -> bool:
    """Native sendfile only on plain TCP. Over TLS asyncio falls back to seek() + read() on the
    file object, whose offset is shared by every dup of the log's descriptor: concurrent responses
    read each other's bytes (garbled or short bodies). Stream with pread instead."""
    return request.transport is not None and not is_tls(request.transport)


async def _sendfile(request: web.Request, opened: tuple[BinaryIO, int, int], offset: int, length: int) -> None:
    """Send ``length`` bytes at ``offset`` of an opened entry's data, closing the file."""
    fobj, data_offset, _size = opened
    with fobj:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        await asyncio.get_running_loop().sendfile(transport, fobj, data_offset + offset, length)


async def _send_entry(
    request: web.Request,
    response: web.StreamResponse,
    backend: Backend,
    entry: Entry,
    offset: int,
    length: int,
    verify_below: int,
) -> None:
    native = _native_sendfile(request)  # (why: see there)
    located = None if entry.size < verify_below or not native else await backend.open_data(entry)
    if located is None:
        try:
            if length <= verify_below:
                await response.write(await backend.read(entry, offset, length))
            else:
                async for piece in backend.stream(entry, offset, length):
                    await response.write(piece)
        except CorruptData:
            log.error("corrupt data for %r", entry.key)
            raise ConnectionResetError("corrupt data") from None
        return
    await _sendfile(request, located, offset, length)


def raise_for_missing(obj: StoredObject | None, key: str) -> StoredObject:
    if obj is None:
        raise S3Error("NoSuchKey", Key=key)
    return obj
