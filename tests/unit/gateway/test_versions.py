"""Versioned writes racing on one key, over a real store: every interleaving of their backend calls.

A PUT (a new version) or a DeleteObject (a delete marker) of a key makes a few backend calls
(read the current record, write the version entry, set or drop the current record, look for a newer
marker). Each call is atomic at the store; two requests on one key interleave between calls. The scheduler below
lets one writer make one call at a time and enumerates every order (depth first over the choices), for
each start order (the writer that starts second has the newer sort id) and each state the key starts
in. After both finish, the current record must be the newest version, or absent when that is a delete
marker: what plain GETs serve must agree with ListObjectVersions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from leofs.accounts import Bucket
from leofs.gateway.backend import EmbeddedBackend
from leofs.gateway.keys import NS_OBJECT, NS_VERSION, object_key, version_key
from leofs.gateway.records import ObjectMeta, object_meta_decoder
from leofs.gateway.versions import load_version, newest_version, put_version, remove_version, rewrite_meta
from leofs.storage.store import ObjectStore

BUCKET = Bucket("b", "owner", "private", [], "us-east-1", 1.0, versioning="Enabled")


class Scheduler:
    """Grants one backend call at a time; ``choices`` picks the writer at each point where both wait."""

    def __init__(self, choices: list[int]) -> None:
        self.choices = choices
        self.points = 0  # choice points met (both writers waiting)
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.moved = asyncio.Event()

    async def gate(self, who: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[who] = fut
        self.moved.set()
        await fut

    async def run(self, writers: list[Callable[[], Awaitable[None]]]) -> None:
        tasks: list[asyncio.Future[None]] = []
        for coro in writers:  # started in order: each picks its sort id, then waits at its first call
            tasks.append(asyncio.ensure_future(coro()))
            await self._settle(tasks)
        while not all(t.done() for t in tasks):
            await self._settle(tasks)
            ready = sorted(self.waiting)
            if len(ready) > 1:
                pick = self.choices[self.points] if self.points < len(self.choices) else 0
                self.points += 1
                who = ready[pick]
            else:
                who = ready[0]
            self.waiting.pop(who).set_result(None)
            await self._settle(tasks)
        for t in tasks:
            t.result()

    async def _settle(self, tasks: list[asyncio.Future[None]]) -> None:
        """Until every writer waits at a gate or has finished (its granted call ran)."""
        while sum(1 for t in tasks if not t.done()) != len(self.waiting):
            self.moved.clear()
            moved: asyncio.Future[Any] = asyncio.ensure_future(self.moved.wait())
            await asyncio.wait([moved, *(t for t in tasks if not t.done())], return_when=asyncio.FIRST_COMPLETED)
            moved.cancel()


class Gated:
    """A backend whose every call first waits for the scheduler to grant it."""

    def __init__(self, inner: EmbeddedBackend, sched: Scheduler, who: int) -> None:
        self.inner, self.sched, self.who = inner, sched, who

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name in ("stream", "open_data"):  # (not used by version writes)
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.sched.gate(self.who)
            return await target(*args, **kwargs)
        return call


class Gateway:
    """What ``put_version`` uses of the gateway, for one writer."""

    def __init__(self, backend: Gated) -> None:
        self.backend = backend
        self.background: set[asyncio.Future[None]] = set()


async def _prepare(backend: EmbeddedBackend, key: str, start: str) -> str:
    """The key's state before the race: absent, an older version current, or an older marker newest.
    Answers that older version's id ("" when absent)."""
    if start == "absent":
        return ""
    meta = ObjectMeta(1, "0" * 32, "owner", delete_marker=start == "marker")
    await put_version(Gateway(backend), BUCKET, key, meta, b"" if start == "marker" else b"o")  # type: ignore[arg-type]
    return meta.version_id or ""


async def _check(backend: EmbeddedBackend, key: str, ids: dict[int, str], removed: str) -> None:
    async def listed(sid: str) -> bool:
        return (await backend.head(NS_VERSION, version_key(BUCKET.name, key, sid))) is not None

    assert all([await listed(sid) for sid in ids.values()]), "every write is listed"
    assert not removed or not await listed(removed), "the removed version is gone"
    newest = await newest_version(backend, BUCKET.name, key)
    current = await backend.head(NS_OBJECT, object_key(BUCKET.name, key))
    if newest is None:
        assert current is None, "no version is left, but a record is served"
    elif newest.meta.delete_marker:
        assert current is None, f"a delete marker is newest, but a record is served ({ids})"
    else:
        assert current is not None, f"version {newest.meta.version_id} is newest, but nothing is served ({ids})"
        assert object_meta_decoder.decode(current.meta).version_id == newest.meta.version_id


async def _explore(tmp: Path, start: str, order: tuple[str, str]) -> int:
    store = await ObjectStore.open(tmp, sync=False, reserve_bytes=0)
    plain = EmbeddedBackend(store)
    runs = 0
    try:
        stack: list[list[int]] = [[]]
        while stack:
            choices = stack.pop()
            key = f"k{runs}"
            runs += 1
            older = await _prepare(plain, key, start)
            sched = Scheduler(choices)
            ids: dict[int, str] = {}

            def writer(kind: str, who: int, key: str = key, sched: Scheduler = sched,
                       ids: dict[int, str] = ids, older: str = older) -> Callable[[], Awaitable[None]]:
                async def go() -> None:
                    gw = Gateway(Gated(plain, sched, who))
                    if kind == "remove":  # DeleteObject with the older version's id
                        version = await load_version(gw.backend, BUCKET.name, key, older)
                        assert version is not None
                        await remove_version(gw, BUCKET.name, key, version)  # type: ignore[arg-type]
                        return
                    if kind == "acl":  # PutObjectAcl with the older version's id: its metadata rewritten
                        version = await load_version(gw.backend, BUCKET.name, key, older)
                        if version is None:  # removed first: the handler answers NoSuchVersion
                            return
                        changed = msgspec.structs.replace(version.meta, acl="public-read")
                        await rewrite_meta(gw.backend, BUCKET.name, key, version, changed)
                        return
                    meta = ObjectMeta(1, "1" * 32, "owner", delete_marker=kind == "marker")
                    await put_version(gw, BUCKET, key, meta, b"" if kind == "marker" else b"p")  # type: ignore[arg-type]
                    ids[who] = meta.version_id or ""
                return go

            await sched.run([writer(kind, who) for who, kind in enumerate(order)])
            await _check(plain, key, ids, older if "remove" in order else "")
            # every choice point past the ones given was taken as 0: branch on a 1 there
            for depth in range(len(choices), sched.points):
                stack.append([*choices, *([0] * (depth - len(choices))), 1])
    finally:
        await store.close()
    return runs


@pytest.mark.parametrize("start", ["absent", "version", "marker"])
@pytest.mark.parametrize("order", [("put", "marker"), ("marker", "put"), ("put", "put"), ("marker", "marker")])
def test_versioned_writes_in_every_interleaving(tmp_path: Path, start: str, order: tuple[str, str]) -> None:
    """The second writer's version is the newer one; every order of the two writers' calls."""
    runs = asyncio.run(_explore(tmp_path, start, order))
    print(f"{order} from {start}: {runs} interleavings")
    assert runs >= 10  # the enumeration reached the interleavings, not one schedule


@pytest.mark.parametrize("start", ["version", "marker"])
@pytest.mark.parametrize("other", ["put", "marker"])
def test_version_removal_racing_a_write_in_every_interleaving(tmp_path: Path, start: str, other: str) -> None:
    """DeleteObject of the older version (a version or a marker) by id, racing a new version or marker.
    (A removal picks no sort id, so which writer starts first does not matter: one order covers all.)"""
    runs = asyncio.run(_explore(tmp_path, start, ("remove", other)))
    print(f"remove and {other} from {start}: {runs} interleavings")
    assert runs >= 10


@pytest.mark.parametrize("other", ["put", "marker", "remove"])
def test_acl_change_racing_a_write_in_every_interleaving(tmp_path: Path, other: str) -> None:
    """PutObjectAcl on the current version racing a new version, a marker or that version's removal:
    the rewrite never puts the older version back as current, nor revives a removed one."""
    runs = asyncio.run(_explore(tmp_path, "version", ("acl", other)))
    print(f"acl and {other}: {runs} interleavings")
    assert runs >= 5
