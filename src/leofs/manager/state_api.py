"""The manager's internal API (``/int/*``, docs/internal-api.md) and the cluster-secret check.

Register and heartbeat answer msgpack :class:`ClusterView` (a heartbeat's: only the members changed
since the version it reports); ``/int/state`` is a JSON long-poll on the store version (users,
buckets, endpoints, settings), encoded once per version, and ``/int/bucket`` applies the bucket changes
gateways receive through S3.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiohttp import web

from leofs.accounts import Grant, ManagerError
from leofs.internal.admin_http import error_reply, ok_reply
from leofs.internal.messages import MSGPACK, HeartbeatRequest, RegisterRequest, StateSnapshot, StateUser, encoder
from leofs.manager.cluster import Cluster
from leofs.manager.store import ManagerStore

log = logging.getLogger("leofs.manager.state_api")

MAX_WAIT = 300.0
_register_decoder = msgspec.msgpack.Decoder(RegisterRequest)
_heartbeat_decoder = msgspec.msgpack.Decoder(HeartbeatRequest)


class VersionWatch:
    """Wakes long-polls whenever the store version grows (from any thread, including /adm/* calls)."""

    def __init__(self, store: ManagerStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.closed = False
        self.waiting = 0  # long-polls currently parked (status, tests)
        self._event = asyncio.Event()
        store.add_listener(self._changed)

    def _changed(self, version: int) -> None:
        self.loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        # A fresh event per generation: every waiter wakes, none misses a bump.
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        """Release every waiter (server shutdown)."""
        self.closed = True
        self._bump()

    async def wait_past(self, since: int, timeout: float) -> int:
        """Wait until the version exceeds ``since`` or ``timeout`` passes; the version then."""
        deadline = self.loop.time() + timeout
        while self.store.version <= since and not self.closed:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                break
            event = self._event  # captured with no await since the check: a later bump sets it
            self.waiting += 1
            try:
                async with asyncio.timeout(remaining):  # (not wait_for: it can swallow a cancellation)
                    await event.wait()
            except TimeoutError:
                break
            finally:
                self.waiting -= 1
        return self.store.version


def state_snapshot(store: ManagerStore) -> StateSnapshot:
    """The answer of GET /int/state (carries secret keys: served only with the cluster secret)."""
    version = store.version  # read first: a change while reading shows up as a later version
    return StateSnapshot(
        version,
        [StateUser(u.user_id, u.access_key, u.secret_key, u.role, u.canonical_id, u.email) for u in store.users()],
        store.buckets(),
        store.endpoints(),
    )


class SnapshotCache:
    """The body of ``GET /int/state``, built and JSON-encoded once per store version: a change wakes
    every gateway's long-poll at once, and they all get the same bytes."""

    def __init__(self, store: ManagerStore) -> None:
        self.store = store
        self.encoded = 0  # snapshots built (tests, benchmarks)
        self._token: tuple[int, int] | None = None
        self._body = b""

    def body(self) -> bytes:
        """The current snapshot's JSON."""
        token = self.store.change_token()  # read first: a change while building shows up as a new token
        if token != self._token:
            self._body = msgspec.json.encode(state_snapshot(self.store))
            self._token = token
            self.encoded += 1
        return self._body


def _error(code: str, message: str) -> web.Response:
    status = 404 if code in ("not_found", "unknown_node") else 409 if code in ("exists", "owned", "conflict") else 400
    return error_reply(code, message, status)


def _msgpack(message: msgspec.Struct) -> web.Response:
    return web.Response(body=encoder.encode(message), content_type=MSGPACK)


class StateAPI:
    """Handlers of /int/register, /int/heartbeat, /int/cluster, /int/state and /int/bucket."""

    def __init__(self, cluster: Cluster, watch: VersionWatch) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.watch = watch
        self.snapshots = SnapshotCache(cluster.store)

    def add_routes(self, app: web.Application) -> None:
        """Mount the internal routes on ``app`` (behind
        :func:`leofs.internal.admin_http.secret_middleware`)."""
        app.router.add_post("/int/register", self.register)
        app.router.add_post("/int/heartbeat", self.heartbeat)
        app.router.add_get("/int/cluster", self.cluster_view)
        app.router.add_get("/int/state", self.state)
        app.router.add_post("/int/bucket", self.bucket)

    async def register(self, request: web.Request) -> web.Response:
        try:
            req = _register_decoder.decode(await request.read())
            node = self.cluster.members.register(req)
        except msgspec.DecodeError as err:
            return _error("bad_request", str(err))
        except ManagerError as err:
            return _error(err.code, str(err))
        log.info("%s %s registered from %s (%s)", node.type, node.name, node.address, node.state)
        return _msgpack(self.cluster.view())

    async def heartbeat(self, request: web.Request) -> web.Response:
        try:
            req = _heartbeat_decoder.decode(await request.read())
        except msgspec.DecodeError as err:
            return _error("bad_request", str(err))
        node = self.cluster.members.heartbeat(req)
        if node is None:  # the caller must register (e.g. the manager lost its data)
            return _error("unknown_node", f"unknown {req.type} {req.name!r}: register first")
        same = (req.ring_hash_current, req.ring_hash_previous) == self.cluster.hashes
        # only the members changed since the version the caller holds (all of them after a restart)
        since = (req.members_epoch, req.members_version) if req.members_epoch else None
        return _msgpack(self.cluster.view(with_rings=not same, since=since))

    async def cluster_view(self, request: web.Request) -> web.Response:
        return _msgpack(self.cluster.view())

    async def state(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT)
        except ValueError:
            return _error("bad_request", "since must be an integer and wait a number of seconds")
        if wait > 0:
            await self.watch.wait_past(since, wait)
        return web.Response(body=self.snapshots.body(), content_type="application/json")

    async def bucket(self, request: web.Request) -> web.Response:
        try:
            args = msgspec.json.decode(await request.read())
            if not isinstance(args, dict):
                raise ManagerError("bad_request", "expected a JSON object")
            result = self._bucket_op(args)
        except msgspec.DecodeError as err:
            return _error("bad_request", str(err))
        except msgspec.ValidationError as err:
            return _error("bad_request", f"invalid grants: {err}")
        except ManagerError as err:
            return _error(err.code, str(err))
        return ok_reply(result)

    def _bucket_op(self, args: dict[str, Any]) -> Any:
        op, name = args.get("op"), args.get("name")
        if not isinstance(name, str) or not name:
            raise ManagerError("bad_request", "missing bucket name")
        raw_grants = args.get("grants")
        grants = msgspec.convert(raw_grants, list[Grant]) if raw_grants else None
        if op == "create":
            owner = args.get("owner")
            if not isinstance(owner, str) or not owner:
                raise ManagerError("bad_request", "missing owner")
            bucket = self.store.create_bucket(name, owner, acl=args.get("acl") or "private",
                                              region=args.get("region") or "us-east-1", grants=grants)
            return msgspec.to_builtins(bucket)
        if op == "delete":
            self.store.delete_bucket(name)
            return None
        if op == "acl":
            return msgspec.to_builtins(self.store.set_bucket_acl(name, args.get("acl") or "private", grants))
        if op == "versioning":
            return msgspec.to_builtins(self.store.set_bucket_versioning(name, str(args.get("status") or "")))
        if op == "tags":
            tags = msgspec.convert(args.get("tags") or [], list[tuple[str, str]])
            return msgspec.to_builtins(self.store.set_bucket_tags(name, tags))
        raise ManagerError("bad_request", f"unknown op {op!r} (create, delete, acl, versioning or tags)")
