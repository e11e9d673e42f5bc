"""The storage node's local data socket (leofs.node.local_data) with a real store and real sockets:
the handshake (secret, throttle, uid), 404/409, the descriptor's bytes, and a descriptor kept
across a compaction of its container."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from leofs.gateway.local_data import Elsewhere, LocalReads
from leofs.internal import local_data as ld
from leofs.internal import wire
from leofs.internal.secret import SecretGuard
from leofs.node.local_data import LocalDataServer
from leofs.storage.store import ObjectStore

SECRET = "local-data-test-secret"
BIG = 2 * 1024 * 1024


def _address() -> str:
    return f"unit-{uuid.uuid4().hex}:1"  # a fresh abstract name per test (xdist runs them side by side)


async def _store(path: Path) -> ObjectStore:
    return await ObjectStore.open(path, containers=1, sync=False, reserve_bytes=0)


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[tuple[ObjectStore, LocalDataServer, str, LocalReads]]:
    """A store, its local data server on a fresh name, and a gateway's LocalReads; all closed after."""
    store = await _store(tmp_path)
    server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
    address = _address()
    assert server.start(address)
    reads = LocalReads(SECRET)
    try:
        yield store, server, address, reads
    finally:
        reads.close()
        await server.close()
        await store.close()


async def _handshake_status(address: str, secret: str) -> int:
    """Connect and prove ``secret``; the node's handshake answer's status."""
    sock = ld.seqpacket()
    try:
        await asyncio.get_running_loop().sock_connect(sock, ld.socket_name(address))
        hello = wire.hello_decoder.decode((await ld.receive(sock))[0])
        nonce = os.urandom(wire.NONCE_BYTES)
        await ld.send(sock, wire.encode(wire.Auth(nonce, wire.client_proof(secret.encode(), hello.nonce, nonce))))
        return ld.answer_decoder.decode((await ld.receive(sock))[0]).status
    finally:
        sock.close()


def test_descriptor_reads_the_needle_and_is_read_only(tmp_path: Path) -> None:
    async def main() -> None:
        async with _serving(tmp_path) as (store, server, address, reads):
            data = os.urandom(BIG)
            entry = (await store.put(1, b"b/k\nblob\n1", data)).entry
            opened = await reads.open(address, entry)
            assert opened is not None
            fobj, offset, size = opened
            with fobj:
                assert size == BIG
                assert os.pread(fobj.fileno(), size, offset) == data
                assert os.pread(fobj.fileno(), 10, offset + 12345) == data[12345:12355]
                assert fcntl.fcntl(fobj.fileno(), fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
                with pytest.raises(OSError):
                    os.pwrite(fobj.fileno(), b"x", offset)
            assert server.served == 1

    asyncio.run(main())


def test_absent_tombstone_and_another_version_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with _serving(tmp_path) as (store, _server, address, reads):
            old = (await store.put(1, b"k", b"a" * 1000)).entry
            new = (await store.put(1, b"k", b"b" * 1000)).entry
            with pytest.raises(Elsewhere, match="409"):
                await reads.open(address, old)  # overwritten: the live version has another clock
            ghost = (await store.put(1, b"gone", b"c" * 10)).entry
            await store.delete(1, b"gone")
            with pytest.raises(Elsewhere, match="404"):
                await reads.open(address, ghost)  # a tombstone
            with pytest.raises(Elsewhere, match="404"):
                await reads.open(address, msgspec.structs.replace(new, key=b"never"))  # absent
            opened = await reads.open(address, new)  # the connection survived the refusals
            assert opened is not None
            with opened[0] as f:
                assert os.pread(f.fileno(), 1000, opened[1]) == b"b" * 1000

    asyncio.run(main())


def test_descriptor_survives_a_compaction_of_its_container(tmp_path: Path) -> None:
    async def main() -> None:
        async with _serving(tmp_path) as (store, _server, address, reads):
            for i in range(20):  # garbage for the compaction to drop
                await store.put(1, b"junk%d" % i, b"j" * 10000)
                await store.delete(1, b"junk%d" % i)
            data = os.urandom(BIG)
            entry = (await store.put(1, b"kept", data)).entry
            opened = await reads.open(address, entry)
            assert opened is not None
            logs_before = sorted((tmp_path / "avs").glob("*.log"))
            await store.compact()
            assert sorted((tmp_path / "avs").glob("*.log")) != logs_before  # the log was replaced
            with opened[0] as f:
                assert os.fstat(f.fileno()).st_nlink == 0  # unlinked, still readable
                assert os.pread(f.fileno(), BIG, opened[1]) == data
            again = await reads.open(address, entry)  # the same version, now in the new log
            assert again is not None
            with again[0] as f:
                assert os.pread(f.fileno(), BIG, again[1]) == data

    asyncio.run(main())


def test_wrong_secret_is_refused_and_throttled(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path)
        guard = SecretGuard(SECRET, burst=3, refill=0.001)
        server = LocalDataServer(SECRET, guard, store)
        address = _address()
        assert server.start(address)
        try:
            wrong = "not-the-cluster-secret"
            assert [await _handshake_status(address, wrong) for _ in range(5)] == [403, 403, 403, 429, 429]
            assert await _handshake_status(address, SECRET) == 200  # the right secret always passes
            entry = (await store.put(1, b"k", b"x" * 100)).entry
            reads = LocalReads(wrong)
            assert await reads.open(address, entry) is None  # refused: the gateway reads over TCP
            assert not reads.maybe_local(address)
            assert server.served == 0
        finally:
            await server.close()
            await store.close()

    asyncio.run(main())


def _status_as_nobody(address: str) -> int:
    """Connect to the socket from a forked child running as uid 65534; the node's first answer."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain blocking calls only, then _exit
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.settimeout(30)
            sock.connect(ld.socket_name(address))
            os.write(write_end, str(ld.answer_decoder.decode(sock.recv(ld.MAX_MESSAGE)).status).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as f:
            return int(f.read() or b"0")
    finally:
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_another_uid_is_refused_before_the_handshake(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path)
        server = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        address = _address()
        assert server.start(address)
        try:
            assert await asyncio.wait_for(asyncio.to_thread(_status_as_nobody, address), 60) == 403
            assert server.served == 0
        finally:
            await server.close()
            await store.close()

    asyncio.run(main())


def test_a_second_node_cannot_take_the_same_name(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path)
        first = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        second = LocalDataServer(SECRET, SecretGuard(SECRET), store)
        address = _address()
        try:
            assert first.start(address)
            assert not second.start(address)  # logged; that node's gateways read over TCP
        finally:
            await first.close()
            await second.close()
            await store.close()

    asyncio.run(main())
