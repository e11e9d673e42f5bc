"""The admin HTTP protocol every role serves: ``POST /adm/<command>``, JSON in and out.

The manager, the storage nodes, a cluster gateway's admin listener and the embedded server answer
it the same way: the caller proves it belongs to the cluster with the shared secret in
``X-Leofs-Cluster-Secret``; the answer is ``{"ok": true, "result": ...}``, or
``{"ok": false, "error": code, "message": ...}`` with a 4xx/5xx status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from leofs import metrics
from leofs.accounts import ManagerError
from leofs.internal.secret import SecretGuard

#: one admin command: its JSON arguments in, its JSON-able result out
Command = Callable[[dict[str, Any]], Awaitable[Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminError(Exception):
    """A refused admin command: ``code`` is the machine-readable reason, ``status`` the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def arg(args: dict[str, Any], name: str) -> str:
    """The non-empty string argument ``name``; AdminError bad_argument when it is missing."""
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError("bad_argument", f"missing argument {name!r}")
    return value


def int_arg(args: dict[str, Any], name: str) -> int:
    """The integer argument ``name`` (a number or a decimal string); AdminError bad_argument else."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AdminError("bad_argument", f"missing argument {name!r}")
    try:
        return int(value)
    except ValueError:
        raise AdminError("bad_argument", f"{name} must be an integer, got {value!r}") from None


def ok_reply(result: Any) -> web.Response:
    """The answer of a command that succeeded."""
    return web.Response(body=msgspec.json.encode({"ok": True, "result": result}), content_type="application/json")


def error_reply(code: str, message: str, status: int) -> web.Response:
    """The answer of a refused command."""
    return web.json_response({"ok": False, "error": code, "message": message}, status=status)


def _manager_status(err: ManagerError) -> int:
    return 404 if err.code == "not_found" else 409 if err.code in ("exists", "owned") else 400


async def run_command(commands: Mapping[str, Command], request: web.Request) -> web.Response:
    """Run the command ``request`` names (``/adm/{command}``) and answer in the admin reply format.
    The cluster secret is checked before, by :func:`secret_middleware`."""
    name = request.match_info["command"]
    command = commands.get(name)
    if command is None:
        return error_reply("unknown_command", f"unknown command {name}", 404)
    try:
        raw = await request.read()
        args: Any = msgspec.json.decode(raw) if raw else {}
        if not isinstance(args, dict):
            raise AdminError("bad_argument", "arguments must be a JSON object")
        result = await command(args)
    except AdminError as err:
        return error_reply(err.code, str(err), err.status)
    except ManagerError as err:
        return error_reply(err.code, str(err), _manager_status(err))
    except msgspec.DecodeError as err:
        return error_reply("bad_json", str(err), 400)
    return ok_reply(result)


def secret_middleware(guard: SecretGuard, *, open_paths: frozenset[str] = frozenset({"/metrics"})) -> Middleware:
    """aiohttp middleware that refuses every request without the cluster secret, except on
    ``open_paths`` (Prometheus scrapers do not hold the secret)."""

    @web.middleware
    async def check_secret(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in open_paths:
            refused = guard.refusal(request)
            if refused is not None:
                return refused
        return await handler(request)

    return check_secret


def make_admin_app(commands: Mapping[str, Command], secret: str | SecretGuard) -> web.Application:
    """An application serving ``POST /adm/<command>`` from ``commands`` (looked up per call, so
    commands added later are served) and ``GET /metrics``, behind the cluster secret."""
    guard = secret if isinstance(secret, SecretGuard) else SecretGuard(secret)

    async def handle(request: web.Request) -> web.Response:
        return await run_command(commands, request)

    app = web.Application(middlewares=[secret_middleware(guard)])
    app.router.add_post("/adm/{command}", handle)
    app.router.add_get("/metrics", metrics.handler)
    return app
