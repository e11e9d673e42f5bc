"""The gateway's end of the local data socket (leofs.gateway.local_data) against a real node-side
server and store: discovery and its backoff, a node that restarts, dies or hangs mid-call (the
read falls back, never hangs), and no descriptor left open, also when a call is cancelled."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

import pytest

from leofs.gateway import local_data
from leofs.gateway.local_data import LocalReads
from leofs.internal import local_data as ld
from leofs.internal.health import CallTimeouts
from leofs.internal.secret import SecretGuard
from leofs.node.local_data import LocalDataServer
from leofs.storage.model import Entry
from leofs.storage.store import ObjectStore

SECRET = "local-data-test-secret"
FAST = CallTimeouts(connect=1.0, op=1.0, body=1.0)


def _address() -> str:
    return f"unit-{uuid.uuid4().hex}:2"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _DiesMidCall(LocalDataServer):
    """Completes the handshake, then hangs up on the first call without answering."""

    def _open(self, req: ld.OpenData) -> tuple[ld.Answer, int | None]:
        raise RuntimeError("killed mid-call")


class _Hangs(LocalDataServer):
    """Completes the handshake, then never answers."""

    async def _serve(self, conn: socket.socket) -> None:
        try:
            if await self._handshake(conn):
                await asyncio.sleep(3600)
        finally:
            conn.close()


async def _entry(store: ObjectStore, size: int = 100_000) -> tuple[Entry, bytes]:
    data = os.urandom(size)
    return (await store.put(1, b"chunk-" + os.urandom(4).hex().encode(), data)).entry, data


def test_no_socket_means_not_local_until_the_backoff_passes(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        clock = _Clock()
        reads = LocalReads(SECRET, FAST, retry_after=30.0, clock=clock)
        address = _address()
        server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        try:
            entry, data = await _entry(store)
            assert await reads.open(address, entry) is None  # nobody listens: another host
            assert not reads.maybe_local(address)
            assert server.start(address)
            assert await reads.open(address, entry) is None  # not tried again within the backoff
            clock.now += 31
            opened = await reads.open(address, entry)
            assert opened is not None
            with opened[0] as f:
                assert os.pread(f.fileno(), len(data), opened[1]) == data
        finally:
            reads.close()
            await server.close()
            await store.close()

    asyncio.run(main())


def test_a_restarted_node_is_read_again_on_a_new_connection(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        reads = LocalReads(SECRET, FAST)
        address = _address()
        server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        try:
            entry, data = await _entry(store)
            assert server.start(address)
            first = await reads.open(address, entry)
            assert first is not None
            first[0].close()
            await server.close()  # the pooled connection is dead now
            server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
            assert server.start(address)
            again = await reads.open(address, entry)
            assert again is not None
            with again[0] as f:
                assert os.pread(f.fileno(), len(data), again[1]) == data
        finally:
            reads.close()
            await server.close()
            await store.close()

    asyncio.run(main())


def test_a_node_dying_or_hanging_mid_call_falls_back_without_hanging(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        entry, _ = await _entry(store)
        for kind in (_DiesMidCall, _Hangs):
            reads = LocalReads(SECRET, FAST)
            address = _address()
            server = kind(SECRET, SecretGuard(SECRET), store)
            assert server.start(address)
            before = local_data.counts["fallbacks"]
            try:
                # bounded by connect + op (2 s) per attempt: a generous bound, never a hang
                assert await asyncio.wait_for(reads.open(address, entry), 30) is None
                assert not reads.maybe_local(address)
                if kind is _Hangs:
                    assert local_data.counts["fallbacks"] == before  # never known local: a plain miss
            finally:
                reads.close()
                await server.close()
        await store.close()

    asyncio.run(main())


def test_a_call_to_a_node_that_hangs_up_raises_connection_error(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        entry, _ = await _entry(store)
        reads = LocalReads(SECRET, FAST)
        address = _address()
        server = _DiesMidCall(SECRET, SecretGuard(SECRET), store)
        assert server.start(address)
        try:
            conn = await reads._connect(address)
            try:
                with pytest.raises(ConnectionError):
                    await asyncio.wait_for(conn.call(entry), 30)
            finally:
                conn.close()
        finally:
            await server.close()
            await store.close()

    asyncio.run(main())


def test_descriptors_are_all_closed_after_many_and_cancelled_calls(tmp_path: Path) -> None:
    async def main() -> None:
        store = await ObjectStore.open(tmp_path, containers=1, sync=False, reserve_bytes=0)
        reads = LocalReads(SECRET, FAST)
        address = _address()
        server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        assert server.start(address)
        try:
            entry, _ = await _entry(store)
            warm = await reads.open(address, entry)  # one pooled connection at the baseline
            assert warm is not None
            warm[0].close()
            baseline = _open_fds()
            for _ in range(200):
                opened = await reads.open(address, entry)
                assert opened is not None
                opened[0].close()
            for _ in range(50):  # cancelled while waiting for the answer
                task = asyncio.ensure_future(reads.open(address, entry))
                await asyncio.sleep(0)
                task.cancel()
                try:
                    got = await task
                except asyncio.CancelledError:
                    got = None
                if got is not None:
                    got[0].close()
            reads.close()  # drops the pooled connections; the server side ends with them

            async def settled() -> bool:
                for _ in range(200):
                    if _open_fds() <= baseline - 1:  # the warm connection is closed too
                        return True
                    await asyncio.sleep(0.02)
                return False

            assert await settled(), (_open_fds(), baseline)
        finally:
            reads.close()
            await server.close()
            await store.close()

    asyncio.run(main())
