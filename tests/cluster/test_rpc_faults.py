"""The binary internal protocol under faults, on real processes behind the fault proxies (N=3 W=2
R=1 D=2, one cluster for the module): a node SIGKILLed while multi-MiB PUT frames are in flight to
it, a node that stops reading (SIGSTOP) under large PUTs, and garbage, another version, oversized
frames and wrong secrets on a node's port. Each ends in a clean error and a retry or a repair:
no request hangs, no acknowledged write is lost."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leofs.internal import wire
from leofs.internal.rpc import RpcClient, RpcRefused
from tests.cluster.faults import processes
from tests.cluster.faults.processes import ProxiedCluster
from tests.integration.conftest import make_client
from tests.support.cluster import running
from tests.support.internal import replica_read
from tests.support.servers import CLUSTER_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "rpcfaults"
SIZE = 3 * 1024 * 1024  # one frame of several MiB per replica write (below the 5 MiB chunk size)
#: the longest a request may take while a node dies or hangs: a call's timeout (body 3 s + 1 s per
#: MiB), then the next replica; generous for a loaded machine
SLOWEST = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedCluster]:
    c = ProxiedCluster(Path(tmp_path_factory.mktemp("rpcfaults")) / "cluster")
    with running(c, after_stop=c.close_proxies):
        make_client(c.endpoint).create_bucket(Bucket=BUCKET)
        yield c


class LargePuts:
    """``threads`` writers making PUTs of SIZE bytes (distinct keys) until stopped; records each
    outcome and how long it took."""

    def __init__(self, endpoint: str, prefix: str, threads: int = 3) -> None:
        self.s3 = make_client(endpoint, read_timeout=60, connect_timeout=10)
        self.prefix = prefix
        self.acked: dict[str, str] = {}  # key -> md5 of what was acknowledged
        self.failed: list[tuple[str, str]] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> LargePuts:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _run(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"{self.prefix}/{worker}/{n}"
            n += 1
            body = os.urandom(SIZE)
            start = time.monotonic()
            try:
                self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            except Exception as exc:  # a clean S3 error is recorded; the test decides
                with self._lock:
                    self.failed.append((key, repr(exc)[:300]))
                continue
            finally:
                with self._lock:
                    self.slowest = max(self.slowest, time.monotonic() - start)
            with self._lock:
                self.acked[key] = hashlib.md5(body).hexdigest()

    def wait_acked(self, more: int, timeout: float = 120.0) -> None:
        target = len(self.acked) + more
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"the writers made no progress: {self.failed[:3]}"
            time.sleep(0.05)


def _on_every_replica(cluster: ProxiedCluster, acked: dict[str, str]) -> list[str]:
    """Keys not held with the acknowledged bytes by each of the three nodes' own copies."""
    bad = []
    for key, md5 in acked.items():
        for name in cluster.storage:
            status, data = replica_read(cluster.storage_address(name), f"{BUCKET}/{key}".encode())
            if status != 200 or hashlib.md5(data).hexdigest() != md5:
                bad.append(f"{key}@{name}")
                break
    return bad


def _readable(cluster: ProxiedCluster, acked: dict[str, str]) -> None:
    s3 = make_client(cluster.endpoint)
    for key, md5 in acked.items():
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == md5, key


def test_a_node_killed_mid_frame_loses_no_acknowledged_write(cluster: ProxiedCluster) -> None:
    victim = "storage2"
    with LargePuts(cluster.endpoint, "kill") as puts:
        puts.wait_acked(3)
        processes.kill(cluster, victim)  # three writers keep multi-MiB frames in flight towards it
        puts.wait_acked(6)
    assert not puts.failed, puts.failed[:3]  # the gateway retried, or the coordinator met W without it
    assert puts.slowest < SLOWEST, puts.slowest
    _readable(cluster, puts.acked)
    processes.restart(cluster, victim)
    cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=90,
                       what=f"{victim} running again")  # fmt: skip
    # its repair queue drained: every acknowledged write is on all three replicas, with its bytes
    cluster.wait_until(lambda: not _on_every_replica(cluster, puts.acked), timeout=60,
                       what="every acknowledged write on three replicas")  # fmt: skip


def test_a_node_that_stops_reading_costs_a_bounded_delay(cluster: ProxiedCluster) -> None:
    victim = "storage3"
    with LargePuts(cluster.endpoint, "stop") as puts:
        puts.wait_acked(3)
        with processes.paused(cluster, victim):  # it reads nothing: senders fill its buffers and wait
            puts.wait_acked(6)
        puts.wait_acked(2)
    assert not puts.failed, puts.failed[:3]
    assert puts.slowest < SLOWEST, puts.slowest
    _readable(cluster, puts.acked)
    cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=90,
                       what=f"{victim} running again")  # fmt: skip
    cluster.wait_until(lambda: not _on_every_replica(cluster, puts.acked), timeout=60,
                       what="every acknowledged write on three replicas")  # fmt: skip


def _answer(address: str, payload: bytes) -> bytes:
    """What the node answers ``payload`` with until it hangs up (bounded)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:  # an aborted connection: closed all the same
            pass
        return out


def test_garbage_versions_oversized_frames_and_wrong_secrets_leave_the_node_serving(cluster: ProxiedCluster) -> None:
    name = "storage1"
    for address in (cluster.storage_address(name), cluster.advertised(name)):  # direct, and through its proxy
        refused = _answer(address, wire.MAGIC + bytes([wire.VERSION + 1]))
        kind, _, hlen, _ = wire.parse_frame_header(refused)
        reply = wire.reply_decoder.decode(refused[wire.FRAME.size : wire.FRAME.size + hlen])
        assert kind == wire.REFUSED and "version 2 is not supported" in reply.message
        assert wire.parse_frame_header(_answer(address, b"\x00" + os.urandom(3000)))[0] == wire.REFUSED
        assert _answer(address, os.urandom(3000).replace(b"\x00", b"\x01")).startswith(b"HTTP/1.")
        # before the handshake a request frame is not served: the node says HELLO, then hangs up
        early = _answer(address, wire.PREFACE + wire.frame_prefix(wire.META, 1, wire.encode(wire.Request(0, b"k"))))
        assert wire.parse_frame_header(early)[0] == wire.HELLO
        # a frame announcing more than the limit, right after the preface: closed (nothing allocated)
        # (a node that kept it open would time the recv out: socket.timeout fails the test)
        oversized = _answer(address, wire.PREFACE + wire.FRAME.pack(wire.PUT, 1, 10, wire.MAX_DATA + 1))
        assert not oversized or wire.parse_frame_header(oversized)[0] == wire.HELLO

    async def secrets() -> None:
        bad, good = RpcClient("a-wrong-cluster-secret-0000"), RpcClient(CLUSTER_SECRET)
        try:
            with pytest.raises(RpcRefused, match=r"\(403\)"):
                await bad.call(cluster.advertised(name), wire.META, wire.Request(0, b"k"), timeout=10)
            reply, _ = await good.call(cluster.advertised(name), wire.META, wire.Request(0, b"none"), timeout=10)
            assert reply.status == 404
        finally:
            await bad.close()
            await good.close()

    asyncio.run(secrets())
    # and the cluster serves S3 through all three nodes
    s3 = make_client(cluster.endpoint)
    for i in range(6):
        s3.put_object(Bucket=BUCKET, Key=f"after/{i}", Body=b"x" * i)
        assert s3.get_object(Bucket=BUCKET, Key=f"after/{i}")["Body"].read() == b"x" * i
