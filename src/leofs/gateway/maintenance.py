"""Background upkeep of what S3 writes leave behind: orphaned chunks and abandoned uploads.

- A chunk is an orphan when no object manifest and no uploaded part refers to its blob: a large PUT
  that failed or crashed half-way, or the chunks of a replaced version whose background deletion
  was cut short. Chunks younger than the grace period are left alone, since an upload may still be
  writing them before its object record exists.
- An object record of a deleted bucket generation is garbage: a write whose process died between
  its record write and its undo (``leofs.gateway.fence``) leaves one. Reads and listings of a
  bucket created again under the name already ignore it; the collector deletes it and its chunks.
- A multipart upload nobody completed is aborted once it is older than the expiry age.

Both work through the :class:`~leofs.gateway.backend.Backend`, so they run the same on the embedded
server and in a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from leofs.gateway.backend import WriteConflict, scan_entries
from leofs.gateway.context import GatewayConfig, Services
from leofs.gateway.fence import read_fence
from leofs.gateway.grace import free_later
from leofs.gateway.keys import NS_CHUNK, NS_DONE, NS_OBJECT, NS_PART, NS_UPLOAD, NS_VERSION
from leofs.gateway.records import blob_decoder, manifest_decoder, object_meta_decoder, upload_decoder
from leofs.gateway.uploads import abort_upload
from leofs.internal.admin_http import AdminError

log = logging.getLogger("leofs.gateway.maintenance")

DEFAULT_CHUNK_GRACE = 24 * 3600.0
DEFAULT_UPLOAD_EXPIRY = 7 * 24 * 3600.0


class MaintenanceReport(msgspec.Struct):
    scanned: int = 0
    deleted: int = 0
    kept_young: int = 0
    grace: float | None = None  # the chunk grace used (gc), after raising it to the floor
    stale_objects: int = 0  # object records of deleted bucket generations deleted (gc)


def min_chunk_grace(config: GatewayConfig) -> float:
    """The youngest an unreferenced chunk may be and still be collected.

    A PUT or part upload writes its chunks as its body arrives, and refers to them only when its
    record is written after the last byte: until then its chunks look like orphans. A body may take
    at most ``body_deadline`` (then RequestTimeout), so a chunk is at most that old while its upload
    is still streaming; the same time again covers the writes after the last byte and a server-side
    copy (which streams no body) with a wide margin. Every gateway of a cluster must use the same
    ``body_deadline``, since any one of them may run gc for all.
    """
    return 2 * config.body_deadline


async def _referenced_blobs(gw: Services, base: bytes) -> set[str]:
    """Blob ids that the object ``base`` (``bucket/key``), its versions and its open uploads' parts
    refer to.

    Parts are read before versions and versions before the object: Complete writes the object
    record (a versioned write its version entry first) before it deletes the part records, so a
    blob moving from a part to the object is seen in one of them.
    """
    refs = {blob_decoder.decode(e.meta).blob_id async for e in scan_entries(gw.backend, NS_PART, base + b"\n")}
    async for version in scan_entries(gw.backend, NS_VERSION, base + b"\n"):
        if version.cnumber > 0:
            refs.update(b.blob_id for b in manifest_decoder.decode(await gw.backend.read(version)).blobs)
    obj = await gw.backend.head(NS_OBJECT, base)
    if obj is not None and obj.cnumber > 0:
        manifest = manifest_decoder.decode(await gw.backend.read(obj))
        refs.update(b.blob_id for b in manifest.blobs)
    return refs


async def collect_stale_objects(gw: Services) -> int:
    """Delete the object records of deleted bucket generations, and free their chunks; answers how
    many. Only generations the bucket's fence records as deleted go: a gateway's view of which
    bucket exists may be a second old, the fence is where the deletions are recorded."""
    deleted: dict[str, list[float]] = {}
    count = 0
    async for entry in scan_entries(gw.backend, NS_OBJECT, b""):
        meta = object_meta_decoder.decode(entry.meta)
        if not meta.generation:
            continue
        bucket, _, key = entry.key.decode().partition("/")
        if bucket not in deleted:
            deleted[bucket] = (await read_fence(gw, bucket))[1].deleted
        if meta.generation not in deleted[bucket]:
            continue
        blobs = manifest_decoder.decode(await gw.backend.read(entry)).blobs if entry.cnumber > 0 else []
        try:
            await gw.backend.delete(NS_OBJECT, entry.key, expect=entry.clock)
        except WriteConflict:
            continue  # written again meanwhile: that version is not ours to judge
        free_later(gw, bucket, key, blobs)
        count += 1
    if count:
        log.info("collected %d object records of deleted bucket generations", count)
    return count


async def collect_orphan_chunks(gw: Services, *, grace: float = DEFAULT_CHUNK_GRACE,
                                now: float | None = None) -> MaintenanceReport:
    """Delete object records of deleted bucket generations, then chunks that nothing refers to and
    that are older than ``grace`` seconds."""
    report = MaintenanceReport(grace=grace, stale_objects=await collect_stale_objects(gw))
    cutoff = int(((now if now is not None else time.time()) - grace) * 1_000_000)
    cached_base: bytes | None = None
    cached_refs: set[str] = set()
    async for item in scan_entries(gw.backend, NS_CHUNK, b""):
        report.scanned += 1
        base = item.key.rpartition(b"\n")[0]  # strip the chunk index
        base, _, blob_id = base.rpartition(b"\n")
        if item.timestamp > cutoff:
            report.kept_young += 1
            continue
        if base != cached_base:
            cached_base, cached_refs = base, await _referenced_blobs(gw, base)
        if blob_id.decode(errors="replace") not in cached_refs:
            await gw.backend.delete(NS_CHUNK, item.key)
            report.deleted += 1
    if report.deleted:
        log.info("collected %d orphaned chunks", report.deleted)
    return report


async def expire_uploads(gw: Services, *, older_than: float = DEFAULT_UPLOAD_EXPIRY,
                         now: float | None = None) -> MaintenanceReport:
    """Abort multipart uploads initiated more than ``older_than`` seconds ago."""

    report = MaintenanceReport()
    cutoff = int(((now if now is not None else time.time()) - older_than) * 1_000_000)
    async for item in scan_entries(gw.backend, NS_UPLOAD, b""):
        report.scanned += 1
        upload = upload_decoder.decode(item.meta)
        if upload.initiated > cutoff:
            report.kept_young += 1
            continue
        base = item.key.rpartition(b"\n")[0].decode()
        bucket, _, key = base.partition("/")
        await abort_upload(gw, bucket, key, upload.upload_id)
        report.deleted += 1
    # completed uploads' results (kept for repeated Completes) go after the same age
    async for item in scan_entries(gw.backend, NS_DONE, b""):
        if item.timestamp <= cutoff:
            await gw.backend.delete(NS_DONE, item.key)
    return report


def _seconds(args: dict[str, Any], name: str, default: float) -> float:
    value = args.get(name, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 <= seconds < 100 * 365 * 86400:  # also refuses NaN
        raise AdminError("bad_argument", f"{name} must be a number of seconds, got {value!r}")
    return seconds


def admin_commands(gw: Services) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
    """Admin API commands: ``gc`` (orphaned chunks) and ``expire-uploads``. A ``grace`` below
    :func:`min_chunk_grace` is raised to it: a shorter one could delete chunks of uploads in flight."""

    async def gc(args: dict[str, Any]) -> Any:
        grace = max(_seconds(args, "grace", DEFAULT_CHUNK_GRACE), min_chunk_grace(gw.config))
        return msgspec.to_builtins(await collect_orphan_chunks(gw, grace=grace))

    async def expire(args: dict[str, Any]) -> Any:
        older_than = _seconds(args, "older_than", DEFAULT_UPLOAD_EXPIRY)
        return msgspec.to_builtins(await expire_uploads(gw, older_than=older_than))

    return {"gc": gc, "expire-uploads": expire}


async def run_periodically(gw: Services, *, interval: float = 3600.0, grace: float = DEFAULT_CHUNK_GRACE,
                           expiry: float = DEFAULT_UPLOAD_EXPIRY) -> None:
    """Collect orphans and expire old uploads every ``interval`` seconds, forever."""
    grace = max(grace, min_chunk_grace(gw.config))
    while True:
        await asyncio.sleep(interval)
        try:
            await collect_orphan_chunks(gw, grace=grace)
            await expire_uploads(gw, older_than=expiry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("maintenance pass failed; retrying in %.0f s", interval)
