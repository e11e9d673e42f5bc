"""What the gateway's handlers work with: the per-request state (:class:`S3Request`), the gateway's
settings (:class:`GatewayConfig`), and :class:`Services`, the narrow view of the gateway a handler
may use (as aiohttp's ``typedefs`` does), so handlers never import the application that calls them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDictProxy

from leofs.accounts import Bucket
from leofs.config import GatewayConfig as GatewayConfig  # defined with every role's options
from leofs.gateway.backend import Backend
from leofs.gateway.control import ControlPlane
from leofs.gateway.router import Op
from leofs.s3.auth import AuthResult, RequestParts
from leofs.s3.errors import S3Error

_REQUEST_PREFIX = secrets.token_hex(4).upper()
_request_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique per process (random prefix + counter): no system call on the request path."""
    return f"{_REQUEST_PREFIX}{next(_request_counter):08X}"


@dataclass(slots=True)
class S3Request:
    """One S3 request after addressing and before authorization."""

    http: web.Request
    request_id: str
    method: str
    raw_path: str
    raw_query: str
    bucket: str | None
    key: str | None
    virtual_host: bool
    query: dict[str, str]
    op: Op
    auth: AuthResult | None = None
    bucket_record: Bucket | None = None
    object_acl_check: str | None = None  # permission the object's own ACL must grant
    #: LeoFS's REST API: the bucket's canned ACL governs object reads too (a READ grant on the
    #: bucket reads its objects); the S3 API leaves object reads to the object's own ACL
    bucket_acl_reads: bool = False
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.http.headers

    @property
    def access_key(self) -> str | None:
        return self.auth.access_key if self.auth else None

    @property
    def resource(self) -> str:
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key is not None else f"/{self.bucket}"

    def parts(self) -> RequestParts:
        headers: dict[str, str] = {}
        for name, value in self.http.headers.items():
            lname = name.lower()
            headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
        return RequestParts(self.method, self.raw_path, self.raw_query, headers)

    def require_bucket(self) -> Bucket:
        if self.bucket_record is None:
            raise S3Error("NoSuchBucket", BucketName=self.bucket or "")
        return self.bucket_record


def split_target(raw_target: str) -> tuple[str, str]:
    """Raw path and raw query of a request target, both still percent-encoded."""
    path, _, query = raw_target.partition("?")
    if path.startswith(("http://", "https://")):  # absolute-form request target
        slash = path.find("/", path.find("//") + 2)
        path = path[slash:] if slash >= 0 else "/"
    return path, query


def parse_query(raw_query: str) -> dict[str, str]:
    """Query parameters decoded (last value wins); valueless parameters map to ''."""
    if not raw_query:
        return {}
    return dict(parse_qsl(raw_query, keep_blank_values=True))


class Services(Protocol):
    """What a handler, and the gateway modules it calls, may use of the gateway."""

    @property
    def backend(self) -> Backend:
        """Object data: the storage engine in-process, or the cluster's storage nodes."""
        ...

    @property
    def control(self) -> ControlPlane:
        """Users, buckets and endpoints."""
        ...

    @property
    def config(self) -> GatewayConfig: ...

    @property
    def background(self) -> set[asyncio.Future[None]]:
        """Tasks that outlive their request (freeing an old version's chunks), kept until done."""
        ...


#: an S3 operation's handler
Handler = Callable[[Services, "S3Request"], Awaitable[web.StreamResponse]]
