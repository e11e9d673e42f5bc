"""The storage node's internal HTTP API (docs/internal-api.md, "Storage node").

Every call carries the cluster secret (403 otherwise; for PUT the check runs at ``Expect:
100-continue`` time, before the body is sent). Object calls take ``ns`` and ``key`` (urlsafe base64)
in the query and ``X-Leofs-Role: coordinate|replica`` (default replica: only what the node itself
stores). Answers: msgpack ``Entry`` bodies; 304 ``GET /obj?match=CLOCK`` and the version has that
clock (a gateway cache's validation: the entry header, no body); 400 bad request, 403 secret, 404 missing or tombstone,
409 clock mismatch or unusable local copy, 412 a conditional write's ``expect`` did not hold, 416
range outside the object, 503 quorum not reachable or no ring yet, 507 disk full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from aiohttp import web

from leofs import metrics
from leofs.internal.admin_http import Command, run_command, secret_middleware
from leofs.internal.messages import (
    DEADLINE_HEADER,
    ENTRY_HEADER,
    MSGPACK,
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    PutHeader,
    Written,
    decode_put_header,
    encode_b64,
    encoder,
    parse_key_param,
    to_scan_items,
    view_decoder,
)
from leofs.internal.secret import SecretGuard
from leofs.internal.tls import is_tls, pread_pieces
from leofs.node.coordinator import Coordinator, Unavailable
from leofs.node.membership import NodeCluster
from leofs.storage.model import CorruptData, DiskFull, Entry, StaleEntry, WriteConflict
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.storage.api")

APPLIED_HEADER = "X-Leofs-Applied"  # on replica writes: "1" stored, "0" a newer version was already there
MAX_BODY = 64 * 1024 * 1024  # gateways cut objects into 5 MiB chunks; this is a generous ceiling

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message)


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None


def _bytes(request: web.Request, name: str, default: bytes = b"") -> bytes:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return parse_key_param(value)
    except ValueError:
        raise _bad(f"{name} must be urlsafe base64") from None


def _ns_key(request: web.Request) -> tuple[int, bytes]:
    ns = _int(request, "ns", 0)
    if "key" not in request.query:
        raise _bad("key is required")
    return ns or 0, _bytes(request, "key")


def _entry_response(entry: Entry, **headers: str) -> web.Response:
    return web.Response(body=encoder.encode(entry), content_type=MSGPACK, headers=headers)


def _written_response(written: Written) -> web.Response:
    return web.Response(body=encoder.encode(written), content_type=MSGPACK)


def check_deadline(deadline: float | None) -> None:
    """Unavailable (503) when a gateway's write arrives after its deadline (both protocols)."""
    if deadline is not None and time.time() > deadline:
        log.warning("refused a write the gateway stopped waiting for %.1f s ago", time.time() - deadline)
        raise Unavailable("the request arrived after its deadline")


class NodeAPI:
    """aiohttp routes over a storage node's parts (:class:`~leofs.node.node.StorageNode` makes it);
    ``on_view`` is called after every cluster view pushed here."""

    def __init__(self, name: str, secret: str, store: ObjectStore, coordinator: Coordinator, cluster: NodeCluster,
                 admin_commands: Mapping[str, Command], *, on_view: Callable[[], None]) -> None:
        self.name = name
        self.store = store
        self.coordinator = coordinator
        self.cluster = cluster
        self.admin_commands = admin_commands
        self.on_view = on_view
        self.guard = SecretGuard(secret)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[secret_middleware(self.guard), self._errors_mw])
        r = app.router
        r.add_route("PUT", "/obj", self.put_obj, expect_handler=self._expect)
        r.add_route("DELETE", "/obj", self.delete_obj)
        r.add_route("GET", "/obj", self.get_obj)
        r.add_route("GET", "/meta", self.get_meta)
        r.add_route("GET", "/scan", self.scan)
        r.add_route("POST", "/int/ring", self.post_ring)
        r.add_route("GET", "/int/health", self.health)
        r.add_route("POST", "/adm/{command}", self.admin)
        r.add_route("GET", "/metrics", metrics.handler)
        return app

    # -- authentication -----------------------------------------------------------------------------
    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """Refuse before the body travels; otherwise let the client send it."""
        refused = self.guard.refusal(request)
        if refused is not None:
            return refused
        if request.version >= (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
            assert request.writer is not None
            try:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            except ConnectionResetError:  # the caller is gone (a killed coordinator): nobody to answer
                return web.Response(status=400, text="connection closed before the body")
        return None

    @web.middleware
    async def _errors_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Unavailable as exc:
            return web.Response(status=503, text=str(exc))
        except DiskFull as exc:
            return web.Response(status=507, text=str(exc) or "disk full")
        except WriteConflict as exc:
            return web.Response(status=412, text=str(exc))

    # -- objects ------------------------------------------------------------------------------------
    @staticmethod
    def _coordinating(request: web.Request) -> bool:
        return request.headers.get(ROLE_HEADER, "") == ROLE_COORDINATE

    @staticmethod
    def _check_deadline(request: web.Request) -> None:
        """A gateway's write that arrives after the gateway stopped waiting (it may have sent it to
        another node meanwhile) is refused before it gets a clock (see DEADLINE_HEADER)."""
        value = request.headers.get(DEADLINE_HEADER)
        if value is None:
            return
        try:
            deadline = float(value)
        except ValueError:
            raise _bad(f"bad {DEADLINE_HEADER}") from None
        check_deadline(deadline)

    async def put_obj(self, request: web.Request) -> web.Response:
        ns, key = _ns_key(request)
        raw = request.headers.get(PUT_HEADER)
        try:
            header = decode_put_header(raw) if raw else PutHeader()
        except (ValueError, msgspec.DecodeError):
            raise _bad(f"bad {PUT_HEADER}") from None
        try:
            data = await request.read()
        except ConnectionResetError:  # the sender (gateway or coordinator) went away mid-body
            log.info("PUT of %r abandoned by its sender", key)
            return web.Response(status=400)
        try:
            if self._coordinating(request):
                self._check_deadline(request)
                return _written_response(await self.coordinator.put(ns, key, data, header))
            if header.clock is None:
                raise _bad("a replica write needs the coordinator's clock")
            r = await self.store.put(ns, key, data, meta=header.meta, clock=header.clock, timestamp=header.timestamp,
                                     cindex=header.cindex, cnumber=header.cnumber, csize=header.csize,
                                     md5=header.md5)  # fmt: skip
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return _entry_response(r.entry, **{APPLIED_HEADER: "1" if r.applied else "0"})

    async def delete_obj(self, request: web.Request) -> web.Response:
        ns, key = _ns_key(request)
        try:
            if self._coordinating(request):
                self._check_deadline(request)
                return _written_response(await self.coordinator.delete(ns, key, expect=_int(request, "expect")))
            clock = _int(request, "clock")
            if clock is None:
                raise _bad("a replica delete needs the coordinator's clock")
            r = await self.store.delete(ns, key, clock=clock, timestamp=_int(request, "timestamp"))
        except ValueError as exc:
            raise _bad(str(exc)) from None
        return _entry_response(r.entry, **{APPLIED_HEADER: "1" if r.applied else "0"})

    async def _lookup(self, request: web.Request, ns: int, key: bytes, compare: bool) -> Entry | None:
        if compare and self._coordinating(request):
            return await self.coordinator.check_read(ns, key)
        return self.store.get(ns, key)

    async def get_meta(self, request: web.Request) -> web.Response:
        ns, key = _ns_key(request)
        entry = await self._lookup(request, ns, key, True)
        if entry is None:
            raise web.HTTPNotFound()
        return _entry_response(entry)

    async def get_obj(self, request: web.Request) -> web.StreamResponse:
        ns, key = _ns_key(request)
        want = _int(request, "clock")
        # with clock= the caller already chose the version (after a compared /meta): no second compare
        entry = await self._lookup(request, ns, key, want is None)
        if entry is None or entry.tombstone:
            raise web.HTTPNotFound()
        if want is not None and entry.clock != want:
            raise web.HTTPConflict(text=f"local clock {entry.clock}")
        match = _int(request, "match")
        if match is not None and entry.clock == match:  # the caller (a gateway cache) holds this version
            return web.Response(status=304, headers={ENTRY_HEADER: encode_b64(entry)})
        start = _int(request, "start", 0) or 0
        length = _int(request, "length")
        if start < 0 or start > entry.size or (length is not None and length < 0):
            raise web.HTTPRequestRangeNotSatisfiable()
        n = entry.size - start if length is None else min(length, entry.size - start)
        for _ in range(2):
            try:
                return await self._send(request, entry, start, n)
            except StaleEntry:  # compacted or overwritten meanwhile: look again
                fresh = self.store.get(ns, key)
                if fresh is None or fresh.tombstone or (want is not None and fresh.clock != want):
                    raise web.HTTPConflict(text="the version changed while reading") from None
                entry = fresh
            except CorruptData as exc:
                # let the caller try another replica; a scrub/diagnose reports the damage
                log.error("corrupt local copy of %r: %s", key, exc)
                raise web.HTTPConflict(text="local copy failed its checksum") from None
        raise web.HTTPConflict(text="the version changed while reading")

    async def _send(self, request: web.Request, entry: Entry, start: int, n: int) -> web.StreamResponse:
        headers = {ENTRY_HEADER: encode_b64(entry)}
        if n == 0 or entry.size < self.store.verify_below:
            data = await self.store.read(entry, start, n) if n else b""
            return web.Response(body=data, headers=headers, content_type="application/octet-stream")
        fobj, offset, _size = self.store.open_data(entry)
        with fobj:
            resp = web.StreamResponse(headers=headers)
            resp.content_type = "application/octet-stream"
            resp.content_length = n
            await resp.prepare(request)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            if is_tls(transport):  # no sendfile through TLS (its fallback seeks a shared offset)
                async for piece in pread_pieces(fobj.fileno(), offset + start, n):
                    await resp.write(piece)
            else:
                await asyncio.get_running_loop().sendfile(transport, fobj, offset + start, n)
            await resp.write_eof()
        return resp

    async def scan(self, request: web.Request) -> web.Response:
        ns = _int(request, "ns", 0) or 0
        limit = _int(request, "limit", 1000) or 1000
        delimiter = _bytes(request, "delimiter") or None
        items = self.store.scan(ns, _bytes(request, "prefix"), start_after=_bytes(request, "start_after"),
                                limit=max(1, min(limit, 10000)), delimiter=delimiter,
                                include_tombstones=request.query.get("tombstones", "") in ("1", "true"))  # fmt: skip
        return web.Response(body=encoder.encode(to_scan_items(items)), content_type=MSGPACK)

    # -- cluster ------------------------------------------------------------------------------------
    async def post_ring(self, request: web.Request) -> web.Response:
        try:
            view = view_decoder.decode(await request.read())
            await self.cluster.apply_async(view)
        except (msgspec.DecodeError, ValueError) as exc:
            raise _bad(f"bad cluster view: {exc}") from None
        self.on_view()  # states may have changed: stopped targets may be back
        current, previous = self.cluster.hashes
        return web.json_response({"ok": True, "ring_hash_current": current, "ring_hash_previous": previous})

    async def health(self, request: web.Request) -> web.Response:
        current, previous = self.cluster.hashes
        return web.json_response({"name": self.name, "ring_hash_current": current,
                                  "ring_hash_previous": previous})  # fmt: skip

    async def admin(self, request: web.Request) -> web.Response:
        """Same answer shape as the manager's admin API: ``{ok, result}`` or ``{ok: false, error, message}``."""
        return await run_command(self.admin_commands, request)
