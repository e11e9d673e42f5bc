"""A storage node's recovery jobs: recover-node, recover-consistency and recover-damaged.

- **recover-node** rebuilds this node (e.g. after its disk was wiped) from the other replicas: for
  every other node of the ring, the keys both hold (:mod:`leofs.node.anti_entropy`) are compared by
  bucket digest, and each key of a differing bucket that the peer holds newer, or this node lacks,
  is pulled here. While it runs the node is *recovering*: a coordinated read of a key it lacks, when
  no other replica answers, is refused (503, the gateway tries the next replica) instead of 404.
- **recover-consistency** is the same pass in both directions: what this node holds newer, or the
  peer lacks, is pushed to the peer (tombstones included).
- **recover-damaged** scrubs the node's logs and rewrites every damaged needle that is a key's
  current version from a healthy replica (:meth:`ReplicaSync.repair_damaged`).

One job at a time. Its state is a durable checkpoint (``DATA/recovery-job.json``: the peer, the
differing buckets and the key cursor within them), saved after every page, so a restart of this
node resumes where it was; a peer or the manager restarting costs retries (calls to a peer are
retried with backoff for :data:`PEER_PATIENCE` seconds). ``rate`` throttles the copies (objects per
second), so client traffic keeps priority; ``recover-status`` shows the progress.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from leofs.internal.admin_http import AdminError, Command
from leofs.internal.messages import (
    MSGPACK,
    DigestReply,
    DigestRequest,
    VersionsRequest,
    digest_reply_decoder,
    digest_request_decoder,
    encoder,
    parse_key_param,
    versions_reply_decoder,
    versions_request_decoder,
)
from leofs.node import anti_entropy
from leofs.node.anti_entropy import BUCKETS, Sharing
from leofs.node.coordinator import Coordinator
from leofs.node.replica_sync import ReplicaSync
from leofs.node.transfer import VersionGone
from leofs.storage.model import CorruptData

log = logging.getLogger("leofs.node.recovery")

KINDS = ("recover-node", "recover-consistency", "recover-damaged")
#: keys per versions page (one checkpoint per page)
PAGE = 500
MAX_PAGE = 10_000
#: how long calls to a peer are retried before the job stops as failed (resumable with the same command)
PEER_PATIENCE = 120.0
#: a digest call scans the peer's whole index: allow for a large one
PEER_CALL_TIMEOUT = aiohttp.ClientTimeout(total=900, sock_connect=2)
T = TypeVar("T")


class JobState(msgspec.Struct):
    """The checkpoint and progress of the node's recovery job."""

    kind: str
    state: str  # running | done | failed
    rate: float  # objects per second copied, 0 = unthrottled
    ring_hash: str
    peers: list[str]
    started: float
    peer: int = 0  # index into peers of the peer being compared
    phase: str = "digests"  # digests | versions (recover-node, recover-consistency); scrub | repair (damaged)
    buckets: list[int] | None = None  # the current peer's differing buckets
    after_ns: int | None = None  # key cursor within them
    after_key: bytes = b""
    peer_total: int = 0  # keys of the differing buckets on the peer (for the progress)
    peer_done: int = 0
    damaged: list[tuple[int, int, int]] = msgspec.field(default_factory=list)  # (container, generation, offset)
    position: int = 0  # next damaged needle to repair
    updated: float = 0.0
    finished: float | None = None
    resumes: int = 0
    error: str = ""
    buckets_compared: int = 0
    buckets_differing: int = 0
    keys_compared: int = 0
    pulled: int = 0
    pushed: int = 0
    bytes_copied: int = 0
    failed: int = 0  # keys that could not be copied (see the node's log)
    repaired: int = 0  # damaged needles rewritten
    failed_containers: list[int] = msgspec.field(default_factory=list)  # not compacted: damage left there


class Throttle:
    """At most ``rate`` operations per second (0 = no limit), evenly spaced."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def take(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(now, self.next) + self.interval


class RecoveryJobs:
    """Runs and checkpoints the job; serves its admin commands and the peers' digest calls."""

    def __init__(self, coordinator: Coordinator, data_dir: Path) -> None:
        self.coordinator = coordinator
        self.sync = ReplicaSync(coordinator)
        self.name = coordinator.name
        self.cluster = coordinator.cluster
        self.index_path = data_dir / "index.sqlite3"
        self.path = data_dir / "recovery-job.json"
        self.job: JobState | None = None
        self.task: asyncio.Task[None] | None = None
        if self.path.exists():
            try:
                self.job = msgspec.json.decode(self.path.read_bytes(), type=JobState)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("ignoring unreadable recovery checkpoint %s: %s", self.path, exc)

    # -- lifecycle ------------------------------------------------------------------------------------
    def resume(self) -> None:
        """After a restart: carry on with a job that was running."""
        if self.job is not None and self.job.state == "running":
            self.job.resumes += 1
            log.info("resuming %s from its checkpoint", self.job.kind)
            self._launch()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    @property
    def recovering(self) -> bool:
        """True while a recover-node job rebuilds this node."""
        return self.job is not None and self.job.kind == "recover-node" and self.job.state == "running"

    def _launch(self) -> None:
        self.coordinator.recovering = self.recovering
        self.task = asyncio.ensure_future(self._run())

    def _save(self) -> None:
        assert self.job is not None
        self.job.updated = time.time()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(self.job))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- admin commands -------------------------------------------------------------------------------
    def commands(self) -> dict[str, Command]:
        async def start_node(args: dict[str, Any]) -> Any:
            return await self.start("recover-node", args)

        async def start_consistency(args: dict[str, Any]) -> Any:
            return await self.start("recover-consistency", args)

        async def start_damaged(args: dict[str, Any]) -> Any:
            return await self.start("recover-damaged", args)

        return {"recover-node": start_node, "recover-consistency": start_consistency,
                "recover-damaged": start_damaged, "recover-status": self.status, "recover-key": self.recover_key}

    async def start(self, kind: str, args: dict[str, Any]) -> Any:
        """Start ``kind``; a failed job of the same kind on the same ring resumes from its checkpoint."""
        if self.task is not None and not self.task.done():
            assert self.job is not None
            raise AdminError("busy", f"{self.job.kind} is running on {self.name}", 409)
        rings = self.cluster.rings
        if rings is None:
            raise AdminError("not_started", "the node has no ring yet", 409)
        try:
            rate = float(args.get("rate") or 0)
        except (TypeError, ValueError):
            raise AdminError("bad_argument", "rate must be a number") from None
        old = self.job
        if (old is not None and old.kind == kind and old.state == "failed" and old.ring_hash == rings.current.hash
                and not args.get("restart")):
            old.state, old.error, old.rate = "running", "", rate
            old.resumes += 1
        else:
            peers = sorted(m.name for m in rings.current.members if m.name != self.name)
            self.job = JobState(kind, "running", rate, rings.current.hash, peers, time.time(),
                                phase="scrub" if kind == "recover-damaged" else "digests")  # fmt: skip
        self._save()
        self._launch()
        return self.status_dict()

    async def status(self, args: dict[str, Any]) -> Any:
        return self.status_dict()

    def status_dict(self) -> dict[str, Any]:
        """The job's counts and progress (0..1); ``state`` idle when no job ever ran."""
        job = self.job
        if job is None:
            return {"node": self.name, "state": "idle", "progress": 0.0}
        out = {k: v for k, v in msgspec.to_builtins(job).items() if k not in ("damaged", "after_key", "buckets")}
        out.update(node=self.name, progress=self._progress(job), damaged_found=len(job.damaged),
                   recovering=self.recovering)  # fmt: skip
        return out

    @staticmethod
    def _progress(job: JobState) -> float:
        if job.state == "done":
            return 1.0
        if job.kind == "recover-damaged":
            return 0.0 if job.phase == "scrub" else job.position / max(1, len(job.damaged))
        inner = min(1.0, job.peer_done / job.peer_total) if job.phase == "versions" and job.peer_total else 0.0
        return round(min(1.0, (job.peer + inner) / max(1, len(job.peers))), 4)

    async def recover_key(self, args: dict[str, Any]) -> Any:
        """recover-file's step for one key (``ns``, ``key`` as urlsafe base64), on one of its replicas."""
        try:
            ns = int(args.get("ns", 0))
            key = parse_key_param(str(args["key"]))
        except (KeyError, ValueError) as exc:
            raise AdminError("bad_argument", f"ns and key (urlsafe base64) are required: {exc}") from None
        try:
            return await self.sync.sync_key(ns, key)
        except (ConnectionError, VersionGone, CorruptData, aiohttp.ClientError, TimeoutError) as exc:
            raise AdminError("unavailable", f"{key!r}: {exc or type(exc).__name__}", 503) from None

    # -- the peers' calls -----------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/int/digests", self.post_digests)
        app.router.add_route("POST", "/int/versions", self.post_versions)

    def _sharing(self, a: str, b: str, ring_hash: str) -> Sharing:
        rings = self.cluster.rings
        if rings is None or rings.current.hash != ring_hash:
            raise web.HTTPConflict(text="another ring")
        return Sharing(rings.current, a, b)

    async def post_digests(self, request: web.Request) -> web.Response:
        try:
            req = digest_request_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        sharing = self._sharing(req.a, req.b, req.ring_hash)
        reply = await asyncio.to_thread(anti_entropy.digests, self.index_path, sharing)
        return web.Response(body=encoder.encode(reply), content_type=MSGPACK)

    async def post_versions(self, request: web.Request) -> web.Response:
        try:
            req = versions_request_decoder.decode(await request.read())
        except msgspec.DecodeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        sharing = self._sharing(req.a, req.b, req.ring_hash)
        req = msgspec.structs.replace(req, limit=max(1, min(req.limit, MAX_PAGE)))  # a page stays bounded
        reply = await asyncio.to_thread(anti_entropy.versions_page, self.index_path, sharing, req)
        return web.Response(body=encoder.encode(reply), content_type=MSGPACK)

    async def _call_peer(self, peer: str, path: str, body: msgspec.Struct, decode: Callable[[bytes], T]) -> T:
        """POST to a peer, retried with backoff while it is unreachable (restarting)."""
        c = self.coordinator
        deadline = time.monotonic() + PEER_PATIENCE
        delay = 0.2
        while True:
            try:
                async with c.client.request("POST", c.transfer.address(peer), path, data=encoder.encode(body),
                                            headers={"Content-Type": MSGPACK},
                                            timeout=PEER_CALL_TIMEOUT) as resp:  # fmt: skip
                    raw = await resp.read()
                    if resp.status == 409:
                        raise RingChanged(f"{peer} holds another ring; run the command again once the rings agree")
                    if resp.status != 200:
                        raise ConnectionError(f"{peer} answered {resp.status}: {raw[:200]!r}")
                    return decode(raw)
            except (ConnectionError, aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"{peer} did not answer for {PEER_PATIENCE:.0f} s: {exc}") from None
                log.info("%s: %s did not answer (%s); retrying", self.job.kind if self.job else "recovery", peer, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- the job --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        job = self.job
        assert job is not None
        throttle = Throttle(job.rate)
        try:
            if job.kind == "recover-damaged":
                await self._damaged(job, throttle)
            else:
                while job.peer < len(job.peers):
                    await self._peer(job, job.peers[job.peer], throttle)
                    job.peer += 1
                    job.phase, job.buckets, job.after_ns, job.after_key = "digests", None, None, b""
                    job.peer_total = job.peer_done = 0
                    self._save()
            job.state, job.finished = "done", time.time()
            log.info("%s finished: %s", job.kind, self.status_dict())
        except asyncio.CancelledError:
            raise  # a stopping node: the checkpoint says running, so the restart resumes
        except Exception as exc:
            log.warning("%s stopped: %s", job.kind, exc)
            job.state, job.error = "failed", str(exc) or type(exc).__name__
        finally:
            if job.state != "running":
                self._save()
                self.coordinator.recovering = self.recovering

    async def _peer(self, job: JobState, peer: str, throttle: Throttle) -> None:
        rings = self.cluster.rings
        for _ in range(int(PEER_PATIENCE)):  # a node restarted without its cached view waits for the manager's
            if rings is not None:
                break
            await asyncio.sleep(1.0)
            rings = self.cluster.rings
        if rings is None or rings.current.hash != job.ring_hash:
            raise RingChanged("the ring changed since the job started; run the command again")
        sharing = Sharing(rings.current, self.name, peer)
        if job.phase == "digests":
            req = DigestRequest(self.name, peer, job.ring_hash)
            theirs = await self._call_peer(peer, "/int/digests", req, digest_reply_decoder.decode)
            mine: DigestReply = await asyncio.to_thread(anti_entropy.digests, self.index_path, sharing)
            diff = [b for b in range(BUCKETS) if mine.digests[b] != theirs.digests[b]]
            job.buckets_compared += BUCKETS
            job.buckets_differing += len(diff)
            job.phase, job.buckets, job.after_ns, job.after_key = "versions", diff, None, b""
            job.peer_total, job.peer_done = sum(theirs.counts[b] for b in diff), 0
            self._save()
        both = job.kind == "recover-consistency"
        while job.buckets:
            after = None if job.after_ns is None else (job.after_ns, job.after_key)
            req2 = VersionsRequest(self.name, peer, job.ring_hash, job.buckets, job.after_ns, job.after_key, PAGE)
            page = await self._call_peer(peer, "/int/versions", req2, versions_reply_decoder.decode)
            last = None if page.last_ns is None else (page.last_ns, page.last_key)
            mine_now = await asyncio.to_thread(anti_entropy.local_versions, self.index_path, sharing, job.buckets,
                                               after, last)  # fmt: skip
            for theirs_v in page.items:
                here = mine_now.pop((theirs_v.ns, theirs_v.key), None)
                job.keys_compared += 1
                job.peer_done += 1
                if here is None or here.clock < theirs_v.clock:
                    v = theirs_v
                    pull = functools.partial(self.sync.pull, peer, v.ns, v.key, v.clock, v.tombstone, v.timestamp)
                    await self._copy(throttle, job, pull, True)
                elif both and here.clock > theirs_v.clock:
                    await self._copy(throttle, job, functools.partial(self.sync.push, peer, here.ns, here.key), False)
            for here in mine_now.values():  # keys the peer lacks altogether
                job.keys_compared += 1
                if both:
                    await self._copy(throttle, job, functools.partial(self.sync.push, peer, here.ns, here.key), False)
            if last is None:
                break
            job.after_ns, job.after_key = last
            self._save()

    async def _copy(self, throttle: Throttle, job: JobState, copy: Callable[[], Awaitable[int]], pulled: bool) -> None:
        """One copy, retried with backoff while the peer is unreachable (restarting)."""
        await throttle.take()
        deadline = time.monotonic() + PEER_PATIENCE
        delay = 0.2
        while True:
            try:
                job.bytes_copied += await copy()
                break
            except VersionGone:
                return  # replaced meanwhile by a newer write, which its coordinator replicates
            except (ConnectionError, aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    job.failed += 1
                    log.warning("%s: a copy failed: %s", job.kind, exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except CorruptData as exc:  # the source's copy is damaged: another peer's pass may have it
                job.failed += 1
                log.warning("%s: a copy failed: %s", job.kind, exc)
                return
        if pulled:
            job.pulled += 1
        else:
            job.pushed += 1

    async def _damaged(self, job: JobState, throttle: Throttle) -> None:
        store = self.coordinator.store
        if job.phase == "scrub":
            report = await store.scrub_report()
            job.damaged = [(d.container, d.generation, d.offset) for d in report.damaged]
            job.keys_compared = report.checked
            job.phase, job.position = "repair", 0
            self._save()
        while job.position < len(job.damaged):
            container, generation, offset = job.damaged[job.position]
            entry = store.entry_at(container, generation, offset)
            if entry is not None:  # else an older version, or one rewritten already (compaction drops it)
                await throttle.take()
                try:
                    outcome = await self.sync.repair_damaged(entry)
                    job.repaired += 1
                    log.info("damaged needle of %r at %d/%d/%d: %s", entry.key, container, generation, offset, outcome)
                except ConnectionError as exc:
                    job.failed += 1
                    job.failed_containers = sorted({*job.failed_containers, container})
                    log.warning("damaged needle of %r not repaired: %s", entry.key, exc)
            job.position += 1
            self._save()
        # The damaged needles are unreferenced now: compacting their containers drops them (a full
        # index rebuild could otherwise pick a damaged needle over its repaired copy of equal clock).
        containers = sorted({c for c, _g, _o in job.damaged} - set(job.failed_containers))
        if containers and store.compaction_status().state != "running":
            await store.compact(containers)


class RingChanged(Exception):
    """The ring changed under a running job: its key sets no longer hold."""

