"""Freeing the chunks of replaced versions after a grace period.

A GET that started before an overwrite (or a delete) streams the old version's chunks after its
headers went out: freeing them at once would cut that body short. So the blobs a write replaced
are freed ``GatewayConfig.free_grace`` seconds later, longer than a read in progress is expected to
take (reads that idle longer are cut anyway). The queue lives in the gateway process that made the
write and survives nothing: what a stop or crash leaves is collected by the orphan collector.
A time-based grace holds across worker processes and gateways, which share no reader counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import weakref

from leofs.gateway.blobs import delete_blob
from leofs.gateway.context import Services
from leofs.gateway.records import Blob

log = logging.getLogger("leofs.gateway.grace")


class GraceQueue:
    """Blobs to free, in the order they are due (one grace for all: appends stay sorted)."""

    def __init__(self, gw: Services) -> None:
        self._gw = weakref.ref(gw)
        self._due: collections.deque[tuple[float, str, str, list[Blob]]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._due)

    def add(self, bucket: str, key: str, blobs: list[Blob], grace: float) -> None:
        self._due.append((time.monotonic() + grace, bucket, key, blobs))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._due:
            due, bucket, key, blobs = self._due[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._due.popleft()
            gw = self._gw()
            if gw is None:
                return
            for blob in blobs:
                with contextlib.suppress(Exception):  # delete_blob logs; the orphan collector retries
                    await delete_blob(gw.backend, bucket, key, blob)


_queues: weakref.WeakKeyDictionary[Services, GraceQueue] = weakref.WeakKeyDictionary()


def free_later(gw: Services, bucket: str, key: str, blobs: list[Blob]) -> None:
    """Free ``blobs`` (of a replaced version, of ``bucket/key``) once the grace is over; at once, in
    the background, when the grace is 0."""
    if not blobs:
        return
    grace = gw.config.free_grace
    if grace > 0:
        queue = _queues.get(gw)
        if queue is None:
            queue = _queues[gw] = GraceQueue(gw)
        queue.add(bucket, key, list(blobs), grace)
        return
    task = asyncio.ensure_future(_free(gw, bucket, key, list(blobs)))
    gw.background.add(task)
    task.add_done_callback(gw.background.discard)


async def _free(gw: Services, bucket: str, key: str, blobs: list[Blob]) -> None:
    for blob in blobs:
        await delete_blob(gw.backend, bucket, key, blob)
