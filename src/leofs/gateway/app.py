"""The S3 gateway as an aiohttp application: addressing, authentication, authorization, dispatch,
and S3 error responses.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter, Histogram

from leofs import metrics
from leofs.gateway.access import authorize
from leofs.gateway.backend import Backend
from leofs.gateway.body import BODY_DEADLINE, BODY_IDLE_TIMEOUT
from leofs.gateway.cache import CACHE_NOTE, CacheNote, CachingBackend, ObjectCache
from leofs.gateway.cache.observe import watch
from leofs.gateway.context import GatewayConfig, Handler, S3Request, new_request_id, parse_query, split_target
from leofs.gateway.control import ControlPlane
from leofs.gateway.custom_headers import CustomHeaders
from leofs.gateway.expected_owner import check_expected_owner
from leofs.gateway.health import Health, Probe
from leofs.gateway.limits import ProcessLimits
from leofs.gateway.router import Op, resolve_operation, resolve_target
from leofs.s3.auth import authenticate
from leofs.s3.errors import S3Error
from leofs.s3.responses import error_document

log = logging.getLogger("leofs.gateway")

REQUEST_KEY = web.RequestKey("s3request", S3Request)
_REQ_KEY = REQUEST_KEY
_ERR_KEY = web.RequestKey("s3error", S3Error)
_NOTE_KEY = web.RequestKey("cachenote", CacheNote)
#: one line per request when ``access_log`` is on (LeoFS's access log, with the cache state)
access_log = logging.getLogger("leofs.access")

ADMIN_PREFIX = "/_leofs_adm/"
PING_PATH = ADMIN_PREFIX + "ping"
#: the gateway's metrics live under the admin prefix: a plain /metrics would be a bucket's listing
METRICS_PATH = ADMIN_PREFIX + "metrics"


class Gateway:
    """Serves S3 (and the REST API, :mod:`leofs.gateway.rest`) over a :class:`Backend` (object
    data) and a :class:`ControlPlane` (users, buckets). ``health`` probes the storage nodes for
    ``/_leofs_adm/ping`` (none: the store is in this process); ``custom_headers`` are the rules
    in force (default: read from ``config.headers_config_file``)."""

    def __init__(self, backend: Backend, control: ControlPlane, config: GatewayConfig | None = None,
                 health: Probe | None = None, custom_headers: CustomHeaders | None = None,
                 cache: ObjectCache | None = None) -> None:  # fmt: skip
        from leofs.gateway.handlers import HANDLERS

        #: the object cache (None: off); handlers reach it only through the backend
        self.cache = cache
        self.backend: Backend = CachingBackend(backend, cache) if cache is not None else backend
        if cache is not None:
            watch(cache)
        self.control = control
        self.config = config or GatewayConfig()
        self.handlers: dict[Op, Handler] = HANDLERS
        cfg = self.config
        self.limits = ProcessLimits(max_connections=cfg.max_connections, body_budget=cfg.body_budget,
                                    chunk_size=cfg.chunk_size)
        # background tasks (e.g. deleting an old version's chunks) kept referenced until done
        self.background: set[asyncio.Future[None]] = set()
        self.health = Health(health)
        self.custom_headers = custom_headers or CustomHeaders(cfg.headers_config_file)
        if self.config.access_log:
            _enable_access_log()

    def make_app(self) -> web.Application:
        """The aiohttp application serving this gateway."""
        _quiet_client_protocol_errors()
        app = web.Application(client_max_size=1024**4)
        # [\s\S]: keys may contain newlines (%0A), which "." would not match (aiohttp would answer 404).
        # Admin commands are not served here: a cluster gateway has its own admin listener.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle, expect_handler=self.expect)
        app.on_response_prepare.append(_common_headers)
        if self.custom_headers.path is not None:  # no hook (no cost per answer) without a file
            app.on_response_prepare.append(self.add_custom_headers)
        return app

    async def add_custom_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """The configured headers of the object's path on a GET or HEAD answer (``response_prepare`` hook)."""
        req = request.get(_REQ_KEY)
        if req is not None and req.op in _OBJECT_READS and response.status in (200, 206, 304):
            for name, value in self.custom_headers.rules.match(req.resource):
                # a signed request's explicit override (response-cache-control=...) wins
                if "response-" + name.lower() not in req.query:
                    response.headers[name] = value

    async def admin_response(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to ``/_leofs_adm/ping`` or ``/_leofs_adm/metrics`` (None for any other path)."""
        if request.method not in ("GET", "HEAD"):
            return None
        if request.path == PING_PATH:
            if await self.health.ok():
                return web.Response(text="OK")
            return web.Response(status=503, text="No storage node answers.")
        if request.path == METRICS_PATH:
            return await metrics.handler(request)
        return None

    # -- request pipeline -------------------------------------------------------------------------
    def _prepare(self, request: web.Request) -> S3Request:
        existing: S3Request | None = request.get(_REQ_KEY)
        if existing is not None:
            return existing
        self.control.begin_request()
        raw_path, raw_query = split_target(request.raw_path)
        query = parse_query(raw_query)
        host = request.headers.get("Host", "")
        bucket, key, vhost = resolve_target(host, raw_path, self.control.endpoints())
        op = resolve_operation(request.method, bucket, key, query, request.headers)
        req = S3Request(request, new_request_id(), request.method, raw_path, raw_query, bucket, key, vhost, query, op)
        request[_REQ_KEY] = req
        request[BODY_IDLE_TIMEOUT] = self.config.body_idle_timeout
        request[BODY_DEADLINE] = self.config.body_deadline
        return req

    def authenticate(self, req: S3Request) -> None:
        """Check the request's signature (if any) and the caller's access to ``req.op``."""
        if req.auth is not None:
            return

        def secret(access_key: str) -> str | None:
            user = self.control.user(access_key)
            return None if user is None else user.secret_key

        req.auth = authenticate(
            req.parts(),
            secret,
            req.now,
            virtual_host_bucket=req.bucket if req.virtual_host else None,
            max_skew=self.config.max_skew,
        )
        if req.bucket is not None:
            req.bucket_record = self.control.bucket(req.bucket)
        authorize(req)
        check_expected_owner(self, req)

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: authenticate from the headers first, then invite the body."""
        try:
            self.limits.check_connections()
            if request.path == PING_PATH:
                return None
            req = self._prepare(request)
            self.authenticate(req)
            self.limits.check_body(self.limits.body_share(request))  # before inviting the body
        except S3Error as err:
            request[_ERR_KEY] = err
            return self._refuse_body(request, err)
        try:
            return await send_continue(request)
        except S3Error as err:
            return self._refuse_body(request, err)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every S3 request comes through here."""
        try:
            self.limits.check_connections()
        except S3Error as err:
            return self._refuse_body(request, err)
        if request.path.startswith(ADMIN_PREFIX):
            admin = await self.admin_response(request)
            if admin is not None:
                return admin
        return await self.observed(request, self._answer)

    async def observed(self, request: web.Request,
                       answer: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """``answer(request)`` with this request's cache note set, counted in the metrics and, when
        configured, in the access log (the S3 and the REST listeners both answer through here)."""
        started = time.perf_counter()
        note = CacheNote(no_cache="no-cache" in request.headers.get("Cache-Control", "").lower())
        CACHE_NOTE.set(note)  # this request's task (and the tasks it starts) see it
        request[_NOTE_KEY] = note
        response = await answer(request)
        req = request.get(_REQ_KEY)
        seconds = time.perf_counter() - started
        count_request(req.op if req is not None else None, response.status, seconds)
        if self.config.access_log:
            _log_access(request, req, response, seconds, note)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            req = self._prepare(request)
            self.authenticate(req)
            handler = self.handlers.get(req.op)
            if handler is None:
                raise S3Error("NotImplemented", f"{req.op.value} is not implemented.")
            share = self.limits.reserve_body(self.limits.body_share(request))
            try:
                return await handler(self, req)
            finally:
                self.limits.release_body(share)
        except S3Error as err:
            return self._error_response(request, err)
        except web.HTTPException:
            raise
        except ConnectionResetError:
            # The client went away (or a storage node broke off a body already being sent): there is
            # no one to answer. aiohttp finds the transport closed and ends quietly.
            log.debug("connection lost on %s %s", request.method, request.path)
            return web.Response(status=499)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return self._error_response(request, S3Error("InternalError"))

    def _refuse_body(self, request: web.Request, err: S3Error) -> web.Response:
        """An error answering ``Expect: 100-continue``: the client will not send the body, so the
        connection cannot carry another request (its next bytes would be read as this body)."""
        response = self._error_response(request, err)
        response.force_close()
        return response

    def _error_response(self, request: web.Request, err: S3Error) -> web.Response:
        req = request.get(_REQ_KEY)
        request_id = req.request_id if req else new_request_id()
        resource = req.resource if req else request.path
        headers = {"x-amz-request-id": request_id, **err.headers}
        if err.status == 304 or request.method == "HEAD":
            return web.Response(status=err.status, headers=headers)
        body = error_document(err.code, err.message, resource, request_id, err.extra)
        response = web.Response(status=err.status, body=body, headers=headers, content_type="application/xml")
        if err.code in _CLOSES_CONNECTION:
            response.force_close()  # no lingering read of a body the server refused or gave up on
        return response


#: errors after which the rest of the request body is not read: the connection closes
_CLOSES_CONNECTION = frozenset({"SlowDown", "RequestTimeout"})
#: the answers that carry an object's custom headers
_OBJECT_READS = frozenset({Op.GetObject, Op.HeadObject})


async def send_continue(request: web.Request) -> web.StreamResponse | None:
    """Invite the body of an authorized ``Expect: 100-continue`` request (S3Error 417 for any
    other expectation)."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        raise S3Error("InvalidArgument", f"Unknown Expect: {expect}", status=417)
    if request.version >= (1, 1):
        try:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        except ConnectionResetError:  # the client is gone: nobody to answer, nothing to log
            return web.Response(status=400, text="connection closed before the body")
        request.writer.output_size = 0
    return None

_counters: dict[tuple[Op | None, int], Counter] = {}
_timers: dict[Op | None, Histogram] = {}


def count_request(op: Op | None, status: int, seconds: float) -> None:
    """Count a request: the labelled metric children are looked up once (``labels()`` takes a
    lock, builds the label tuple and formats the status on every call)."""
    counter = _counters.get((op, status))
    if counter is None:
        operation = op.value if op is not None else "Unknown"
        counter = _counters[op, status] = metrics.s3_requests.labels(operation, str(status))
    counter.inc()
    timer = _timers.get(op)
    if timer is None:
        timer = _timers[op] = metrics.s3_seconds.labels(op.value if op is not None else "Unknown")
    timer.observe(seconds)


def tls_context(cert: Path | str | None, key: Path | str | None) -> ssl.SSLContext | None:
    """The server TLS context for the S3 port, or None for plain HTTP."""
    if not cert or not key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every S3 listener uses (embedded or cluster gateway)."""
    # Bodies are stored verbatim: a Content-Encoding (gzip, ...) is the object's, never decoded here.
    return web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)


class _ClientProtocolErrors(logging.Filter):
    """aiohttp logs a traceback for every malformed request line or header it answers with a 4xx;
    those are the client's errors, worth one line, not a traceback in the server log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            record.msg = f"{record.msg} (malformed request: %s %s)"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), exc.code, type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _quiet_client_protocol_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientProtocolErrors) for f in server_log.filters):
        server_log.addFilter(_ClientProtocolErrors())


def _enable_access_log() -> None:
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s\t%(message)s"))
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def _log_access(request: web.Request, req: S3Request | None, response: web.StreamResponse, seconds: float,
                note: CacheNote) -> None:
    """operation, bucket, key, size, status, latency (ms), cache state (miss, hit:mem, hit:disk, -)."""
    operation = req.op.value if req is not None else request.method
    bucket = req.bucket if req is not None and req.bucket else "-"
    key = req.key if req is not None and req.key is not None else "-"
    access_log.info("%s\t%s\t%s\t%s\t%d\t%.3f\t%s", operation, bucket, key.encode("unicode_escape").decode(),
                    response.content_length if response.content_length is not None else "-", response.status,
                    seconds * 1000, note.state or "-")


def cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    """http-mode cache: downstream caches may keep the answer for what is left of its TTL."""
    note = request.get(_NOTE_KEY)
    if note is not None and note.max_age is not None and response.status in (200, 206, 304):
        response.headers.setdefault("Cache-Control", f"max-age={int(note.max_age)}")
        response.headers["Age"] = str(int(note.age))


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    req = request.get(_REQ_KEY)
    cache_headers(request, response)
    if "x-amz-request-id" not in response.headers:
        response.headers["x-amz-request-id"] = req.request_id if req else new_request_id()
    response.headers["x-amz-id-2"] = response.headers["x-amz-request-id"]
    response.headers["Server"] = "LeoFS"
