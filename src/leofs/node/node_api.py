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
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

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
from leofs.node.object_calls import Answer, ObjectCalls
from leofs.storage.model import DiskFull, Entry, WriteConflict
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


def _write_response(answer: Answer) -> web.Response:
    """A PUT's or DELETE's answer: ``Written`` (coordinated) or the replica's entry and applied flag."""
    if answer.status != 200:
        return _error(answer)
    if answer.written is not None:
        return _written_response(answer.written)
    assert answer.entry is not None
    return _entry_response(answer.entry, **{APPLIED_HEADER: "1" if answer.applied else "0"})


def _error(answer: Answer) -> web.Response:
    """An error status as text (aiohttp's "404: Not Found" where the call gave no message)."""
    text = answer.message or f"{answer.status}: {HTTPStatus(answer.status).phrase}"
    return web.Response(status=answer.status, text=text)


class NodeAPI:
    """aiohttp routes over a storage node's parts (:class:`~leofs.node.node.StorageNode` makes it);
    ``on_view`` is called after every cluster view pushed here."""

    def __init__(self, name: str, secret: str, store: ObjectStore, coordinator: Coordinator, cluster: NodeCluster,
                 admin_commands: Mapping[str, Command], *, on_view: Callable[[], None]) -> None:
        self.name = name
        self.store = store
        self.coordinator = coordinator
        self.calls = ObjectCalls(store, coordinator)
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

    # -- objects: decode the request, make the call (leofs.node.object_calls), encode its answer -------
    @staticmethod
    def _coordinating(request: web.Request) -> bool:
        return request.headers.get(ROLE_HEADER, "") == ROLE_COORDINATE

    @staticmethod
    def _deadline(request: web.Request) -> float | None:
        """When the gateway stops waiting for this write (see DEADLINE_HEADER)."""
        value = request.headers.get(DEADLINE_HEADER)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise _bad(f"bad {DEADLINE_HEADER}") from None

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
        coordinate = self._coordinating(request)
        deadline = self._deadline(request) if coordinate else None
        return _write_response(await self.calls.put(ns, key, data, header, coordinate=coordinate, deadline=deadline))

    async def delete_obj(self, request: web.Request) -> web.Response:
        ns, key = _ns_key(request)
        if self._coordinating(request):
            answer = await self.calls.delete(ns, key, coordinate=True, deadline=self._deadline(request),
                                             expect=_int(request, "expect"))  # fmt: skip
        else:
            answer = await self.calls.delete(ns, key, coordinate=False, clock=_int(request, "clock"),
                                             timestamp=_int(request, "timestamp"))  # fmt: skip
        return _write_response(answer)

    async def get_meta(self, request: web.Request) -> web.Response:
        ns, key = _ns_key(request)
        answer = await self.calls.meta(ns, key, coordinate=self._coordinating(request))
        if answer.status != 200 or answer.entry is None:
            return _error(answer)
        return _entry_response(answer.entry)

    async def get_obj(self, request: web.Request) -> web.StreamResponse:
        ns, key = _ns_key(request)
        answer = await self.calls.get(ns, key, coordinate=self._coordinating(request), clock=_int(request, "clock"),
                                      match=_int(request, "match"), start=_int(request, "start", 0) or 0,
                                      length=_int(request, "length"))  # fmt: skip
        if answer.entry is None or answer.status not in (200, 304):
            return _error(answer)
        headers = {ENTRY_HEADER: encode_b64(answer.entry)}
        if answer.status == 304:  # the caller (a gateway cache) holds this version: the entry, no body
            return web.Response(status=304, headers=headers)
        if answer.file is None:
            return web.Response(body=answer.data, headers=headers, content_type="application/octet-stream")
        fobj, offset, n = answer.file
        with fobj:
            resp = web.StreamResponse(headers=headers)
            resp.content_type = "application/octet-stream"
            resp.content_length = n
            await resp.prepare(request)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            if is_tls(transport):  # no sendfile through TLS (its fallback seeks a shared offset)
                async for piece in pread_pieces(fobj.fileno(), offset, n):
                    await resp.write(piece)
            else:
                await asyncio.get_running_loop().sendfile(transport, fobj, offset, n)
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
