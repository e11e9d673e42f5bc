"""Object bodies in storage: small ones inline in the object record, large ones cut into chunks.

A body larger than the chunk threshold (5.5 MiB) is cut, while it streams, into chunks of
``chunk_size`` (5 MiB). Each chunk is its own key (placed independently on the ring in a cluster);
a few chunk writes are in flight at once. Memory per upload stays around one chunk, whatever the
object's size; chunks queued for storage are capped process-wide (:data:`MAX_INFLIGHT_BYTES`), so
many concurrent uploads wait (and TCP pushes back on their clients) instead of piling up chunks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import weakref
from dataclasses import dataclass

from leofs.gateway.backend import Backend
from leofs.gateway.body import Digests, RequestBody
from leofs.gateway.keys import NS_CHUNK, chunk_key
from leofs.gateway.records import Blob, Manifest
from leofs.s3.errors import S3Error

log = logging.getLogger("leofs.gateway.blobs")

NO_MD5 = bytes(16)


#: default for chunk bytes handed to storage and not yet durable, summed over every upload of the
#: process (GatewayConfig.chunk_budget; the embedded server divides it among its processes)
MAX_INFLIGHT_BYTES = 32 * 1024 * 1024


def new_blob_id() -> str:
    return secrets.token_hex(8)


class _Budget:
    """A byte budget shared by the chunk writers of one event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, n: int) -> int:
        n = min(n, self.limit)
        while self.used + n > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += n
        return n

    def release(self, n: int) -> None:
        self.used -= n
        while self._waiters:  # every waiter re-checks; there are few
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Budget] = weakref.WeakKeyDictionary()


def _budget(limit: int) -> _Budget:
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        budget = _budgets[loop] = _Budget(limit)
    budget.limit = limit
    return budget


class ChunkWriter:
    """Writes the chunks of one blob with a bounded number of writes in flight."""

    def __init__(self, backend: Backend, bucket: str, key: str, chunk_size: int, window: int,
                 budget: int = MAX_INFLIGHT_BYTES) -> None:  # fmt: skip
        self.backend = backend
        self.budget = budget
        self.bucket = bucket
        self.key = key
        self.blob_id = new_blob_id()
        self.chunk_size = chunk_size
        self.window = window
        self.count = 0
        self.size = 0
        self._inflight: set[asyncio.Task[object]] = set()

    async def add(self, data: bytes | bytearray) -> None:
        """Queue the next chunk; waits while the window or the process-wide budget is full, raises a
        failed write's error. ``data`` must not change afterwards."""
        while len(self._inflight) >= self.window:
            done, _ = await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._inflight.discard(task)
                task.result()
        self.count += 1
        self.size += len(data)
        key = chunk_key(self.bucket, self.key, self.blob_id, self.count)
        budget = _budget(self.budget)
        held = await budget.acquire(len(data))
        try:
            # Chunks carry no MD5 of their own (the needle CRC guards them, the object's ETag covers the
            # whole): hashing 5 MiB on the storage writer thread would serialise every upload behind it.
            task = asyncio.ensure_future(self.backend.put(NS_CHUNK, key, memoryview(data), cindex=self.count,
                                                          md5=NO_MD5))
        except BaseException:
            budget.release(held)
            raise
        task.add_done_callback(lambda _task: budget.release(held))
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
    budget: int = MAX_INFLIGHT_BYTES,
) -> Ingested:
    """Read, hash and (when large) chunk a request body; verify it before returning.

    ``threshold`` 0 forces a blob even for a small body (multipart parts).
    """
    if body.declared_length is not None and body.declared_length > max_size:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size), ProposedSize=str(body.declared_length))
    digests = body.digests()
    buf = bytearray()
    writer: ChunkWriter | None = None
    try:
        async for piece in body.pieces():
            buf += piece
            if body.received > max_size:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(max_size))
            if writer is None and (len(buf) > threshold or threshold == 0):
                writer = ChunkWriter(backend, bucket, key, chunk_size, window, budget)
            while writer is not None and len(buf) >= chunk_size:
                # the full buffer becomes the chunk (no copy of it); only the remainder is copied
                chunk, buf = buf, buf[chunk_size:]
                del chunk[chunk_size:]
                await digests.update_async(memoryview(chunk))
                await writer.add(chunk)
        await digests.update_async(memoryview(buf))
        body.verify(digests)
        if writer is None and threshold == 0:  # an empty part is still a blob (of no chunks)
            writer = ChunkWriter(backend, bucket, key, chunk_size, window, budget)
        if writer is None:
            return Ingested(digests.length, digests, bytes(buf), None)
        if buf:
            await writer.add(buf)  # the last chunk: the buffer itself, not a copy
        del buf
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
