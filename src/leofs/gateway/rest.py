"""The REST API: plain HTTP on ``/bucket/key`` (LeoFS's ``protocol = rest``).

GET (with Range), HEAD, PUT (POST is a PUT, as in LeoFS) and DELETE of objects; no bucket
operations (400), no S3 sub-resources, no copy, no XML: errors are one line of plain text with the
status S3 would give (404, 403, 400, 416, 405 for other methods, 503, 507...).

Each request becomes the S3 operation it stands for (GetObject, HeadObject, PutObject,
DeleteObject) and goes through the gateway's own pipeline: authentication (a SigV4/SigV2 header or
a presigned URL is accepted; no signature is an anonymous caller), the bucket's canned ACL as in
LeoFS (anonymous reads of every object in public-read buckets, anonymous writes in
public-read-write buckets; an object's own ACL can only widen reads), the process limits, and the
S3 handlers themselves (chunked large objects, conditions, the object cache). Unlike LeoFS's REST
API, which had no authentication at all, nothing in a private bucket is readable or writable
without credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from leofs.gateway.app import ADMIN_PREFIX, REQUEST_KEY, Gateway, cache_headers, send_continue
from leofs.gateway.body import BODY_DEADLINE, BODY_IDLE_TIMEOUT
from leofs.gateway.context import S3Request, new_request_id, parse_query, split_target
from leofs.gateway.router import Op, resolve_target
from leofs.s3.errors import S3Error

log = logging.getLogger("leofs.gateway.rest")

_OPS = {"GET": Op.GetObject, "HEAD": Op.HeadObject, "PUT": Op.PutObject, "POST": Op.PutObject,
        "DELETE": Op.DeleteObject}  # fmt: skip
ALLOWED_METHODS = "GET, HEAD, PUT, POST, DELETE"
#: query parameters that name an S3 sub-resource or variant: the REST API has none of them
_SUBRESOURCES = frozenset({
    "acl", "attributes", "uploads", "uploadId", "partNumber", "versionId", "versions", "versioning",
    "tagging", "retention", "legal-hold", "torrent", "restore", "select", "select-type", "delete",
    "location", "list-type", "policy", "lifecycle", "cors", "website", "logging", "notification",
    "replication", "encryption", "object-lock",
})
#: errors after which the rest of the request body is not read: the connection closes
_CLOSES_CONNECTION = frozenset({"SlowDown", "RequestTimeout"})


class RestApi:
    """The REST listener of a :class:`Gateway`: its own router, the gateway's pipeline and handlers."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def make_app(self) -> web.Application:
        """The aiohttp application of the REST API."""
        app = web.Application(client_max_size=1024**4)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle, expect_handler=self.expect)
        app.on_response_prepare.append(_rest_headers)
        if self.gateway.custom_headers.path is not None:
            app.on_response_prepare.append(self.gateway.add_custom_headers)
        return app

    def _prepare(self, request: web.Request) -> S3Request:
        existing: S3Request | None = request.get(REQUEST_KEY)
        if existing is not None:
            return existing
        gw = self.gateway
        gw.control.begin_request()
        op = _OPS.get(request.method)
        if op is None:
            raise S3Error("MethodNotAllowed", headers={"Allow": ALLOWED_METHODS})
        raw_path, raw_query = split_target(request.raw_path)
        query = parse_query(raw_query)
        # path style only: the path names the object, whatever the Host
        bucket, key, _ = resolve_target("", raw_path, [])
        if bucket is None or key is None:
            raise S3Error("InvalidRequest", "The REST API serves objects only: /bucket/key.")
        _refuse_s3_only(query, request.headers)
        req = S3Request(request, new_request_id(), request.method, raw_path, raw_query, bucket, key, False, query, op,
                        bucket_acl_reads=True)
        request[REQUEST_KEY] = req
        request[BODY_IDLE_TIMEOUT] = gw.config.body_idle_timeout
        request[BODY_DEADLINE] = gw.config.body_deadline
        return req

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: the body is invited only once the request may proceed."""
        gw = self.gateway
        try:
            gw.limits.check_connections()
            gw.authenticate(self._prepare(request))
            gw.limits.check_body(gw.limits.body_share(request))
            return await send_continue(request)
        except S3Error as err:
            response = _error_response(request, err)
            response.force_close()  # the client will not send the body the next request would read as its own
            return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every REST request comes through here."""
        gw = self.gateway
        try:
            gw.limits.check_connections()
        except S3Error as err:
            response = _error_response(request, err)
            response.force_close()
            return response
        if request.path.startswith(ADMIN_PREFIX):
            admin = await gw.admin_response(request)
            if admin is not None:
                return admin
        return await gw.observed(request, self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        gw = self.gateway
        try:
            req = self._prepare(request)
            gw.authenticate(req)
            share = gw.limits.reserve_body(gw.limits.body_share(request))
            try:
                return await gw.handlers[req.op](gw, req)
            finally:
                gw.limits.release_body(share)
        except S3Error as err:
            return _error_response(request, err)
        except web.HTTPException:
            raise
        except ConnectionResetError:
            log.debug("connection lost on %s %s", request.method, request.path)
            return web.Response(status=499)
        except Exception:
            log.exception("internal error on REST %s %s", request.method, request.path)
            return _error_response(request, S3Error("InternalError"))


def _refuse_s3_only(query: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """S3 sub-resources and server-side copies have no meaning here: 400, never a silent GET or PUT."""
    for name in query:
        if name in _SUBRESOURCES:
            raise S3Error("InvalidArgument", f"The REST API has no '{name}'; use the S3 API.", ArgumentName=name)
    if "x-amz-copy-source" in headers:
        raise S3Error("InvalidArgument", "The REST API does not copy objects; use the S3 API.",
                      ArgumentName="x-amz-copy-source")


def _error_response(request: web.Request, err: S3Error) -> web.Response:
    """An error as one line of plain text (no body for HEAD or 304), with S3's status."""
    req = request.get(REQUEST_KEY)
    headers = {"x-amz-request-id": req.request_id if req else new_request_id(), **err.headers}
    if err.status == 304 or request.method == "HEAD":
        return web.Response(status=err.status, headers=headers)
    response = web.Response(status=err.status, text=f"{err.code}: {err.message}\n", headers=headers,
                            content_type="text/plain")
    if err.code in _CLOSES_CONNECTION:
        response.force_close()
    return response


async def _rest_headers(request: web.Request, response: web.StreamResponse) -> None:
    cache_headers(request, response)
    if "x-amz-request-id" not in response.headers:
        req = request.get(REQUEST_KEY)
        response.headers["x-amz-request-id"] = req.request_id if req else new_request_id()
    response.headers["Server"] = "LeoFS"
