"""The control socket of a gateway worker process: how the primary reaches each worker's own
object cache (``purge-cache``).

Every process sharing a gateway's S3 port (the embedded server's, or ``leofs gateway --workers``)
has its own cache, so a purge answered by the primary alone would leave the workers serving their
copies (in http mode until the TTL ends). Each worker listens on a Unix socket of its own in the
primary's private runtime directory (0700; the socket 0600, and the peer must run as the same
user: ``SO_PEERCRED``). The primary drops its own entry, then asks every worker and answers once
each one did, or names the ones that failed.

Wire: one JSON object per line each way, one request per connection (purges are rare).
A worker binds its control socket before its S3 listener: a worker that cannot be reached
(no socket yet, or refused: it is dead or starting) serves nothing and so holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

import msgspec

from leofs.gateway.cache import ObjectCache
from leofs.gateway.keys import object_key

log = logging.getLogger("leofs.gateway.control")

#: seconds the primary waits for a worker's answer
CALL_TIMEOUT = 10.0
_MAX_LINE = 64 * 1024  # a request names one bucket and key (at most ~1 KiB each)
_UCRED = struct.Struct("3i")  # pid, uid, gid


def purge_local(cache: ObjectCache | None, bucket: str, key: str) -> dict[str, Any]:
    """Drop BUCKET/KEY from this process's cache; whether it held it."""
    if cache is None:
        return {"purged": False, "cache": "disabled"}
    engine_key = object_key(bucket, key)
    held = cache.peek(engine_key)
    cache.drop(engine_key)
    return {"purged": held, "cache": cache.mode}


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return False
    return bool(uid == os.getuid())


async def serve_control(path: Path, cache: ObjectCache | None) -> asyncio.AbstractServer:
    """Listen on ``path`` (mode 0600) for the primary's requests to this process's cache."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer):
                return
            line = await reader.readline()
            try:
                request = msgspec.json.decode(line)
                bucket, key = request["bucket"], request["key"]
                if request.get("op") != "purge-cache" or not isinstance(bucket, str) or not isinstance(key, str):
                    raise ValueError("expected {op: purge-cache, bucket, key}")
                answer: dict[str, Any] = {"ok": True, **purge_local(cache, bucket, key)}
            except (msgspec.DecodeError, KeyError, TypeError, ValueError) as err:
                answer = {"ok": False, "error": f"bad request: {err}"}
            writer.write(msgspec.json.encode(answer) + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the primary went away, or sent too much: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by the process this one replaces
    server = await asyncio.start_unix_server(handle, path=str(path), limit=_MAX_LINE)
    os.chmod(path, 0o600)
    return server


async def _ask(index: int, path: Path, bucket: str, key: str, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"process": index}
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=_MAX_LINE), timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        return {**row, "ok": True, "purged": False, "running": False}  # not serving: holds nothing
    except (OSError, TimeoutError) as err:
        return {**row, "ok": False, "error": f"cannot reach worker {index}: {err or 'timed out'}"}
    try:
        writer.write(msgspec.json.encode({"op": "purge-cache", "bucket": bucket, "key": key}) + b"\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:  # it died while answering: a restarted worker starts with an empty cache,
            # but this one may have served its copy until now; say so rather than guess
            return {**row, "ok": False, "error": f"worker {index} closed the connection without answering"}
        answer = msgspec.json.decode(line)
        if not isinstance(answer, dict):
            return {**row, "ok": False, "error": f"worker {index} answered {answer!r}"}
        return {**row, **answer}
    except (OSError, TimeoutError, msgspec.DecodeError) as err:
        return {**row, "ok": False, "error": f"worker {index}: {err or 'timed out'}"}
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def purge_workers(sockets: dict[int, Path], bucket: str, key: str,
                        timeout: float = CALL_TIMEOUT) -> list[dict[str, Any]]:  # fmt: skip
    """Ask every worker (index -> control socket) to drop BUCKET/KEY; one row per worker, in index order."""
    return list(await asyncio.gather(*(_ask(i, p, bucket, key, timeout) for i, p in sorted(sockets.items()))))


def parse_purge_args(args: dict[str, Any]) -> tuple[str, str] | None:
    """BUCKET and KEY from a purge-cache command's arguments (``bucket`` and ``key``, or ``path``
    = BUCKET/KEY), or None when they do not name an object."""
    bucket, key = args.get("bucket"), args.get("key")
    path = args.get("path")
    if (bucket is None or key is None) and isinstance(path, str):  # the manager sends all three
        bucket, _, key = path.lstrip("/").partition("/")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return None
    return bucket, key


async def purge_everywhere(cache: ObjectCache | None, sockets: dict[int, Path], bucket: str, key: str, *,
                           timeout: float = CALL_TIMEOUT) -> dict[str, Any]:  # fmt: skip
    """purge-cache on a gateway's processes: this one (0) and every worker. ``ok`` is false when a
    worker could not confirm; ``processes`` (with workers) has one row per process."""
    local = purge_local(cache, bucket, key)
    if cache is None or not sockets:  # one process; or no cache anywhere (all run the same settings)
        return {**local, "ok": True}
    rows = [{"process": 0, "ok": True, **local}, *await purge_workers(sockets, bucket, key, timeout)]
    failed = [r for r in rows if not r.get("ok")]
    return {
        "purged": any(r.get("purged") for r in rows),
        "cache": cache.mode,
        "ok": not failed,
        "processes": rows,
        **({"error": "; ".join(str(r.get("error")) for r in failed)} if failed else {}),
    }
