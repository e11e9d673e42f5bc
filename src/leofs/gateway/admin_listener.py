"""A cluster gateway's admin listener: the commands the manager sends it (``purge-cache``, ``gc``,
``expire-uploads``, ``delete-bucket``), on their own address (``leofs gateway --admin-address``, loopback by default).

They act on every user's data, so they never share the public S3 port: there only
``/_leofs_adm/ping`` and ``/_leofs_adm/metrics`` are served. Calls carry the cluster secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from leofs.accounts import Bucket
from leofs.config import DEFAULT_GATEWAY_ADMIN_ADDRESS, parse_address
from leofs.gateway import fence, maintenance
from leofs.gateway.app import Gateway
from leofs.gateway.context import Services
from leofs.gateway.worker_control import parse_purge_args, purge_everywhere
from leofs.internal import admin_http
from leofs.internal.admin_http import AdminError
from leofs.s3.errors import S3Error

DEFAULT_ADMIN_ADDRESS = parse_address(DEFAULT_GATEWAY_ADMIN_ADDRESS)


def make_admin_app(gw: Gateway, secret: str, workers: Callable[[], dict[int, Path]] | None = None) -> web.Application:
    """``POST /adm/<command>`` (JSON arguments, ``{"ok": ..., "result": ...}`` answers) and
    ``GET /metrics``, as on the manager and the storage nodes. ``workers``: the control sockets of
    this gateway's worker processes (``leofs gateway --workers``), which purge-cache reaches too."""

    async def purge_cache(args: dict[str, Any]) -> Any:
        named = parse_purge_args(args)
        if named is None:
            raise AdminError("bad_argument", "purge-cache takes BUCKET/KEY")
        result = await purge_everywhere(gw.cache, workers() if workers is not None else {}, *named)
        if not result.pop("ok"):
            raise AdminError("failed", f"purge-cache did not reach every process: {result['error']}", 502)
        return result

    remove = bucket_deleter(gw)

    async def delete_bucket(args: dict[str, Any]) -> Any:
        # the manager sends its bucket record: this gateway's view of the buckets may be older
        try:
            record = msgspec.convert(args.get("record"), Bucket)
        except msgspec.ValidationError as err:
            raise AdminError("bad_argument", f"record must be a bucket: {err}") from None
        await remove(record)
        return None

    commands = {"purge-cache": purge_cache, "delete-bucket": delete_bucket, **maintenance.admin_commands(gw)}
    return admin_http.make_admin_app(commands, secret)


def bucket_deleter(gw: Services) -> Callable[[Bucket], Awaitable[None]]:
    """``leofs adm delete-bucket`` on this gateway: S3 DeleteBucket's fenced path
    (:func:`leofs.gateway.fence.delete_bucket`), its refusals as admin errors."""

    async def delete(bucket: Bucket) -> None:
        try:
            await fence.delete_bucket(gw, bucket)
        except S3Error as err:
            if err.code == "BucketNotEmpty":
                raise AdminError("not_empty", f"bucket {bucket.name!r} is not empty", 409) from None
            if err.code == "NoSuchBucket":
                raise AdminError("not_found", f"no bucket {bucket.name!r}", 404) from None
            raise AdminError("failed", f"{err.code}: {err.message}", err.status) from None

    return delete
