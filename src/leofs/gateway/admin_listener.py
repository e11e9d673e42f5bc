"""A cluster gateway's admin listener: the commands the manager sends it (``purge-cache``, ``gc``,
``expire-uploads``), on their own address (``leofs gateway --admin-address``, loopback by default).

They act on every user's data, so they never share the public S3 port: there only
``/_leofs_adm/ping`` and ``/_leofs_adm/metrics`` are served. Calls carry the cluster secret.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leofs.gateway import maintenance
from leofs.gateway.app import Gateway
from leofs.internal import admin_http

DEFAULT_ADMIN_ADDRESS = ("127.0.0.1", 10011)


def make_admin_app(gw: Gateway, secret: str) -> web.Application:
    """``POST /adm/<command>`` (JSON arguments, ``{"ok": ..., "result": ...}`` answers) and
    ``GET /metrics``, as on the manager and the storage nodes."""

    async def purge_cache(args: dict[str, Any]) -> Any:
        # this gateway keeps no object cache yet: there is nothing to drop
        return {"purged": False, "cache": "disabled"}

    commands = {"purge-cache": purge_cache, **maintenance.admin_commands(gw)}
    return admin_http.make_admin_app(commands, secret)
