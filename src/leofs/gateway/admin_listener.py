"""A cluster gateway's admin listener: the commands the manager sends it (``purge-cache``, ``gc``,
``expire-uploads``), on their own address (``leofs gateway --admin-address``, loopback by default).

They act on every user's data, so they never share the public S3 port: there only
``/_leofs_adm/ping`` and ``/_leofs_adm/metrics`` are served. Calls carry the cluster secret.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from leofs import metrics
from leofs.config import DEFAULT_GATEWAY_ADMIN_ADDRESS, parse_address
from leofs.gateway import maintenance
from leofs.gateway.app import Gateway
from leofs.internal.secret import SecretGuard
from leofs.manager.admin import AdminError

DEFAULT_ADMIN_ADDRESS = parse_address(DEFAULT_GATEWAY_ADMIN_ADDRESS)


def make_admin_app(gw: Gateway, secret: str) -> web.Application:
    """``POST /adm/<command>`` (JSON arguments, ``{"ok": ..., "result": ...}`` answers) and
    ``GET /metrics``, as on the manager and the storage nodes."""
    guard = SecretGuard(secret)

    async def purge_cache(args: dict[str, Any]) -> Any:
        # this gateway keeps no object cache yet: there is nothing to drop
        return {"purged": False, "cache": "disabled"}

    commands = {"purge-cache": purge_cache, **maintenance.admin_commands(gw)}

    async def handle(request: web.Request) -> web.Response:
        refused = guard.refusal(request)
        if refused is not None:
            return refused
        name = request.match_info["command"]
        run = commands.get(name)
        if run is None:
            return web.json_response({"ok": False, "error": "unknown_command", "message": f"unknown command {name}"},
                                     status=404)
        raw = await request.read()
        try:
            args = msgspec.json.decode(raw) if raw else {}
        except msgspec.DecodeError:
            args = None
        if not isinstance(args, dict):
            return web.json_response({"ok": False, "error": "bad_argument",
                                      "message": "arguments must be a JSON object"}, status=400)
        try:
            result = await run(args)
        except AdminError as err:
            return web.json_response({"ok": False, "error": err.code, "message": str(err)}, status=err.status)
        return web.json_response({"ok": True, "result": result})

    app = web.Application()
    app.router.add_post("/adm/{command}", handle)
    app.router.add_get("/metrics", metrics.handler)
    return app
