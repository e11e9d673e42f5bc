"""The worker control socket (purge-cache across the processes of a gateway), on real Unix sockets:
a worker drops the entry and says whether it held it; one that is not running holds nothing; one
that hangs or dies mid-answer is reported by index, never waited on forever; bad requests get an
error answer; the socket is private to the service user."""

from __future__ import annotations

import asyncio
from pathlib import Path

from leofs.config import GatewayConfig
from leofs.gateway.cache import ObjectCache, build_cache
from leofs.gateway.keys import object_key
from leofs.gateway.worker_control import parse_purge_args, purge_everywhere, purge_workers, serve_control
from leofs.storage.model import Entry


def entry(key: bytes, size: int) -> Entry:
    return Entry(ns=0, key=key, clock=1, timestamp=1, tombstone=False, size=size, md5=b"\0" * 16, meta=b"",
                 cindex=0, cnumber=0, csize=0, container=0, generation=0, data_offset=0, crc=0)  # fmt: skip


def a_cache() -> ObjectCache:
    built = build_cache(GatewayConfig(cache_ram="1MiB"), default_ram=0)
    assert built is not None
    return built


async def cached(cache: ObjectCache, bucket: str, key: str) -> bytes:
    k = object_key(bucket, key)
    await cache.put(k, entry(k, 3), b"abc", epoch=cache.epoch_of(k))
    assert cache.peek(k)
    return k


def test_purge_reaches_every_worker_and_reports_the_missing(tmp_path: Path) -> None:
    async def main() -> None:
        primary, worker = a_cache(), a_cache()
        kp, kw = await cached(primary, "b", "k"), await cached(worker, "b", "k")
        server = await serve_control(tmp_path / "w1.sock", worker)
        assert (tmp_path / "w1.sock").stat().st_mode & 0o777 == 0o600
        (tmp_path / "w3.sock").touch()  # left by a dead worker: refused, so not running
        sockets = {1: tmp_path / "w1.sock", 2: tmp_path / "w2.sock", 3: tmp_path / "w3.sock"}
        result = await purge_everywhere(primary, sockets, "b", "k")
        assert result["ok"] and result["purged"] and result["cache"] == "inner"
        assert [(r["process"], r["ok"], r["purged"], r.get("running", True)) for r in result["processes"]] == [
            (0, True, True, True), (1, True, True, True), (2, True, False, False), (3, True, False, False)]  # fmt: skip
        assert not primary.peek(kp) and not worker.peek(kw)
        again = await purge_everywhere(primary, {1: tmp_path / "w1.sock"}, "b", "k")
        assert not again["purged"]
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_a_hung_or_dying_worker_is_named(tmp_path: Path) -> None:
    async def main() -> None:
        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            await asyncio.sleep(30)

        async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.close()

        hung = await asyncio.start_unix_server(hang, path=str(tmp_path / "hung.sock"))
        dying = await asyncio.start_unix_server(die, path=str(tmp_path / "dying.sock"))
        rows = await purge_workers({4: tmp_path / "hung.sock", 5: tmp_path / "dying.sock"}, "b", "k", timeout=0.5)
        assert [(r["process"], r["ok"]) for r in rows] == [(4, False), (5, False)]
        assert "4" in rows[0]["error"] and "5" in rows[1]["error"]
        result = await purge_everywhere(a_cache(), {4: tmp_path / "hung.sock"}, "b", "k", timeout=0.5)
        assert not result["ok"] and "worker 4" in result["error"]
        for server in (hung, dying):
            server.close()

    asyncio.run(main())


def test_bad_requests_and_no_cache(tmp_path: Path) -> None:
    async def main() -> None:
        server = await serve_control(tmp_path / "w.sock", None)
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "w.sock"))
        writer.write(b'{"op": "format-disk"}\n')
        assert b'"ok":false' in await reader.readline()
        writer.close()
        [row] = await purge_workers({1: tmp_path / "w.sock"}, "b", "k")
        assert row == {"process": 1, "ok": True, "purged": False, "cache": "disabled"}
        result = await purge_everywhere(None, {1: tmp_path / "w.sock"}, "b", "k")
        assert result == {"purged": False, "cache": "disabled", "ok": True}
        server.close()

    asyncio.run(main())


def test_purge_arguments() -> None:
    assert parse_purge_args({"path": "b/dir/k"}) == ("b", "dir/k")
    assert parse_purge_args({"bucket": "b", "key": "k", "path": "x/y"}) == ("b", "k")
    assert parse_purge_args({"path": "b"}) is None and parse_purge_args({"path": "/b/"}) is None
    assert parse_purge_args({}) is None
