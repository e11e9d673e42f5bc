"""Object bodies in storage: small ones inline in the object record, large ones cut into chunks.

A body larger than the chunk threshold (5.5 MiB) is cut, while it streams, into chunks of
``chunk_size`` (5 MiB). Each chunk is its own key (placed independently on the ring in a cluster);
a few chunk writes are in flight at once. Memory per upload stays around one chunk plus the
write window, whatever the object's size.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from leofs.gateway.backend import Backend
from leofs.gateway.body import Digests, RequestBody
from leofs.gateway.records import NS_CHUNK, Blob, Manifest, chunk_key
from leofs.s3.errors import S3Error

log = logging.getLogger("leofs.gateway.blobs")


def new_blob_id() -> str:
    return secrets.token_hex(8)


class ChunkWriter:
    """Writes the chunks of one blob with a bounded number of writes in flight."""

    def __init__(self, backend: Backend, bucket: str, key: str, chunk_size: int, window: int) -> None:
        self.backend = backend
        self.bucket = bucket
        self.key = key
        self.blob_id = new_blob_id()
        self.chunk_size = chunk_size
        self.window = window
        self.count = 0
        self.size = 0
        self._inflight: set[asyncio.Task[object]] = set()

    async def add(self, data: bytes) -> None:
        """Queue the next chunk; waits while the window is full, raises a failed write's error."""
        while len(self._inflight) >= self.window:
            done, _ = await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._inflight.discard(task)
                task.result()
        self.count += 1
        self.size += len(data)
        key = chunk_key(self.bucket, self.key, self.blob_id, self.count)
        task = asyncio.ensure_future(self.backend.put(NS_CHUNK, key, data, cindex=self.count))
        self._inflight.add(task)

    async def finish(self, md5_hex: str) -> Blob:
        """Wait for every chunk to be durable; the blob's description."""
        if self._inflight:
            await asyncio.gather(*self._inflight)
            self._inflight.clear()
        return Blob(self.blob_id, self.size, self.chunk_size, self.count, md5_hex)

    async def abort(self) -> None:
        """Drop what was written (best effort; the orphan collector catches the rest)."""
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        self._inflight.clear()
        written = Blob(self.blob_id, self.size, self.chunk_size, self.count, "")
        await delete_blob(self.backend, self.bucket, self.key, written)


@dataclass(slots=True)
class Ingested:
    """A verified body: inline bytes, or a blob of chunks already durable."""

    size: int
    digests: Digests
    inline: bytes | None
    blob: Blob | None


async def ingest(
    backend: Backend,
    bucket: str,
    key: str,
    body: RequestBody,
    *,
    threshold: int,
    chunk_size: int,
    window: int,
    max_size: int,
) -> Ingested:
    """Read, hash and (when large) chunk a request body; verify it before returning.

    ``threshold`` 0 forces a blob even for a small body (multipart parts).
    """
    if body.declared_length is not None and body.declared_length > max_size:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size), ProposedSize=str(body.declared_length))
    digests = body.digests()
    pieces: list[bytes] = []
    buffered = 0
    writer: ChunkWriter | None = None
    try:
        async for piece in body.pieces():
            pieces.append(piece)
            buffered += len(piece)
            if body.received > max_size:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size))
            if writer is None and (buffered > threshold or threshold == 0):
                writer = ChunkWriter(backend, bucket, key, chunk_size, window)
            if writer is not None and buffered >= chunk_size:
                data = b"".join(pieces)
                offset = 0
                while buffered - offset >= chunk_size:
                    chunk = data[offset : offset + chunk_size]
                    offset += chunk_size
                    await digests.update_async(chunk)
                    await writer.add(chunk)
                rest = data[offset:]
                pieces = [rest] if rest else []
                buffered = len(rest)
        tail = b"".join(pieces)
        await digests.update_async(tail)
        body.verify(digests)
        if writer is None:
            return Ingested(digests.length, digests, tail, None)
        if tail:
            await writer.add(tail)
        blob = await writer.finish(digests.md5.hexdigest())
        return Ingested(digests.length, digests, None, blob)
    except BaseException:
        if writer is not None:
            await asyncio.shield(writer.abort())
        raise


async def delete_blob(backend: Backend, bucket: str, key: str, blob: Blob) -> None:
    """Delete every chunk of a blob."""
    for index in range(1, blob.count + 1):
        try:
            await backend.delete(NS_CHUNK, chunk_key(bucket, key, blob.blob_id, index))
        except Exception:  # the orphan collector will retry
            log.warning("could not delete chunk %d of %s/%s", index, bucket, key, exc_info=True)


async def delete_manifest(backend: Backend, bucket: str, key: str, manifest: Manifest) -> None:
    for blob in manifest.blobs:
        await delete_blob(backend, bucket, key, blob)
