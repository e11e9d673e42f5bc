"""Repair on a real cluster (N=3 W=2 R=1 D=2): recover-file, recover-damaged (scrub repair),
recover-consistency (anti-entropy after a write missed with the repair queues lost) and recover-node
(a wiped node rebuilt while reads are routed to it, and resumed after the node is killed midway)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from leofs.internal.messages import (
    PUT_HEADER,
    ROLE_COORDINATE,
    ROLE_HEADER,
    ROLE_REPLICA,
    SECRET_HEADER,
    PutHeader,
    encode_b64,
    key_param,
)
from tests.cluster.faults.disks import corrupt_needle, drop_repair_queue, wipe_data_dir
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.internal import replica_meta, replica_read
from tests.support.servers import CLUSTER_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "recover"
NODES = ("storage1", "storage2", "storage3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    with running(LeofsCluster(tmp_path_factory.mktemp("recover") / "cluster")) as c:
        make_client(c.endpoint).create_bucket(Bucket=BUCKET)
        yield c


@pytest.fixture(scope="module")
def s3(cluster: LeofsCluster) -> Any:
    return make_client(cluster.endpoint, connect_timeout=3, read_timeout=30)


def _body(name: str, version: int = 0, size: int = 2000) -> bytes:
    seed = hashlib.sha256(f"{name}:{version}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _key(name: str) -> bytes:
    return f"{BUCKET}/{name}".encode()


def _clocks(cluster: LeofsCluster, name: str) -> dict[str, tuple[int, bool] | None]:
    out: dict[str, tuple[int, bool] | None] = {}
    for node in NODES:
        e = replica_meta(cluster.storage_address(node), _key(name))
        out[node] = None if e is None else (e.clock, e.tombstone)
    return out


def _replica_put(address: str, key: bytes, data: bytes, clock: int) -> None:
    """Store a version on one node only (as if only it had received that write)."""
    header = PutHeader(clock=clock, timestamp=clock, md5=hashlib.md5(data).digest())
    req = urllib.request.Request(f"http://{address}/obj?ns=0&key={key_param(key)}", data=data, method="PUT",
                                 headers={SECRET_HEADER: CLUSTER_SECRET, ROLE_HEADER: ROLE_REPLICA,
                                          PUT_HEADER: encode_b64(header)})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _coordinated_read(address: str, key: bytes) -> tuple[int, bytes]:
    """GET as a gateway sends it (role coordinate, R=1) to this node."""
    req = urllib.request.Request(f"http://{address}/obj?ns=0&key={key_param(key)}",
                                 headers={SECRET_HEADER: CLUSTER_SECRET, ROLE_HEADER: ROLE_COORDINATE})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _admin(address: str, command: str, **args: Any) -> Any:
    """An admin command over HTTP (the manager's or a node's): polls without a CLI process each time."""
    req = urllib.request.Request(f"http://{address}/adm/{command}", data=json.dumps(args).encode(), method="POST",
                                 headers={SECRET_HEADER: CLUSTER_SECRET, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["result"]


def _job(cluster: LeofsCluster, node: str) -> dict[str, Any]:
    status: dict[str, Any] = _admin(cluster.storage_address(node), "recover-status")
    return status


def _start_all(cluster: LeofsCluster, nodes: list[str]) -> None:
    """Start (restart) storage nodes in parallel."""
    threads = [threading.Thread(target=cluster.storage[n].start) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(cluster.storage[n].alive for n in nodes)


def _wait_running(cluster: LeofsCluster) -> None:
    def running() -> bool:
        nodes = _admin(cluster.manager_address, "status")["nodes"]
        return {n["state"] for n in nodes if n["type"] == "storage"} == {"running"}

    cluster.wait_until(running, timeout=60, what="nodes running")


def _wait_job(cluster: LeofsCluster, node: str, timeout: float = 120) -> dict[str, Any]:
    status: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal status
        try:
            status = _job(cluster, node)
        except OSError:
            return False  # the node is restarting
        return status["state"] != "running"

    cluster.wait_until(finished, timeout=timeout, what=f"the recovery job on {node}")
    assert status["state"] == "done", status
    return status


def test_recover_file_brings_every_replica_to_the_latest_version(cluster: LeofsCluster, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="rf/one", Body=_body("rf/one"))
    before = _clocks(cluster, "rf/one")
    clock = next(iter(before.values()))
    assert clock is not None and set(before.values()) == {clock}
    newer = _body("rf/one", 1)
    _replica_put(cluster.storage_address("storage2"), _key("rf/one"), newer, clock[0] + 1)

    result = cluster.adm("recover-file", f"{BUCKET}/rf/one")
    assert result["keys"] == 1 and result["copies_repaired"] == 2, result
    assert set(_clocks(cluster, "rf/one").values()) == {(clock[0] + 1, False)}
    for node in NODES:
        assert replica_read(cluster.storage_address(node), _key("rf/one")) == (200, newer)

    # a large object: its record and every chunk are checked (nothing to repair here)
    s3.put_object(Bucket=BUCKET, Key="rf/large", Body=b"L" * (5 * 1024 * 1024 + 600 * 1024))
    result = cluster.adm("recover-file", f"{BUCKET}/rf/large")
    assert result["keys"] == 3 and result["copies_repaired"] == 0, result  # the manifest and 2 chunks


def test_scrub_finds_a_corrupt_needle_and_the_repair_restores_it(cluster: LeofsCluster, s3: Any) -> None:
    body = _body("dmg/one", size=50_000)
    s3.put_object(Bucket=BUCKET, Key="dmg/one", Body=body)
    node = "storage3"
    address = cluster.storage_address(node)
    cluster.wait_until(lambda: replica_meta(address, _key("dmg/one")) is not None, what="the replica")
    corrupt_needle(cluster.data_dirs[node], _key("dmg/one"))
    assert replica_read(address, _key("dmg/one"))[0] == 409  # the node will not serve it
    assert _diagnose(cluster, node)["damaged_count"] == 1

    cluster.adm("recover-damaged", node)
    status = cluster.adm("recover-status", node)
    assert status["state"] == "done" and status["damaged_found"] == 1 and status["repaired"] == 1, status
    assert replica_read(address, _key("dmg/one")) == (200, body)
    # the damaged needle is no longer referenced: the job compacted its container, the scrub is clean
    assert _diagnose(cluster, node)["damaged_count"] == 0


def _adm_on_a_terminal(cluster: LeofsCluster, *args: str) -> str:
    """What ``leofs adm`` shows on a terminal (a pseudo-terminal as its stdout)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "leofs", "adm", "--manager", cluster.manager_address,
                             "--cluster-secret", CLUSTER_SECRET, *args], stdout=follower, stderr=subprocess.STDOUT)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(60) == 0, out
    return out.decode(errors="replace")


def _diagnose(cluster: LeofsCluster, node: str) -> dict[str, Any]:
    """diagnose-start's report (it exits 1 when it found damage)."""
    out = cluster.adm("diagnose-start", node, check=False)
    report: dict[str, Any] = out if isinstance(out, dict) else json.loads(out.stdout)
    return report


def test_recover_consistency_fixes_every_difference_both_ways(cluster: LeofsCluster, s3: Any) -> None:
    for i in range(10):
        s3.put_object(Bucket=BUCKET, Key=f"ae/old-{i}", Body=_body(f"ae/old-{i}"))
        s3.put_object(Bucket=BUCKET, Key=f"ae/del-{i}", Body=_body(f"ae/del-{i}"))
    behind = "storage3"
    cluster.storage[behind].kill()  # gateways and coordinators find it unreachable at once
    for i in range(10):  # writes and deletes storage3 misses
        s3.put_object(Bucket=BUCKET, Key=f"ae/new-{i}", Body=_body(f"ae/new-{i}"))
        s3.put_object(Bucket=BUCKET, Key=f"ae/old-{i}", Body=_body(f"ae/old-{i}", 1))
        s3.delete_object(Bucket=BUCKET, Key=f"ae/del-{i}")
    for node in ("storage1", "storage2"):  # the coordinators lose their repair queues
        cluster.storage[node].kill()
        drop_repair_queue(cluster.data_dirs[node])
    _start_all(cluster, list(NODES))
    _wait_running(cluster)
    # storage3 holds something newer than the others: a write only it received
    _replica_put(cluster.storage_address(behind), _key("ae/old-0"), _body("ae/old-0", 2), int(time.time() * 1e6))
    names = [f"ae/{kind}-{i}" for kind in ("old", "new", "del") for i in range(10)]
    differing = [n for n in names if len(set(_clocks(cluster, n).values())) > 1]
    assert len(differing) == 30, differing

    status = cluster.adm("recover-consistency", behind)
    assert status["state"] == "done" and status["failed"] == 0, status
    assert status["pulled"] >= 29 and status["pushed"] >= 2, status  # ae/old-0 went to both others
    for n in names:
        clocks = _clocks(cluster, n)
        assert len(set(clocks.values())) == 1 and None not in clocks.values(), (n, clocks)
        assert next(iter(clocks.values()))[1] is n.startswith("ae/del"), (n, clocks)  # type: ignore[index]
    assert replica_read(cluster.storage_address("storage1"), _key("ae/old-0")) == (200, _body("ae/old-0", 2))
    again = cluster.adm("recover-consistency", behind)  # nothing left: every bucket digest is equal now
    assert again["buckets_differing"] == 0 and again["pulled"] == again["pushed"] == 0, again
    shown = _adm_on_a_terminal(cluster, "recover-consistency", "storage1")
    assert "recover-consistency [" in shown and "100.0%" in shown and "state" in shown, shown


def _wait_ring(cluster: LeofsCluster, node: str) -> None:
    """Until the (restarted) node holds the ring again."""

    def has_ring() -> bool:
        req = urllib.request.Request(f"http://{cluster.storage_address(node)}/int/health",
                                     headers={SECRET_HEADER: CLUSTER_SECRET})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return bool(json.loads(resp.read())["ring_hash_current"])
        except OSError:
            return False

    cluster.wait_until(has_ring, timeout=30, what=f"{node} to hold the ring")


def test_recover_node_rebuilds_a_wiped_node_and_resumes_after_kills(cluster: LeofsCluster, s3: Any) -> None:
    names = [f"rn/{i:03d}" for i in range(60)]
    for n in names:
        s3.put_object(Bucket=BUCKET, Key=n, Body=_body(n))
    s3.delete_object(Bucket=BUCKET, Key=names[0])
    wiped = "storage2"
    address = cluster.storage_address(wiped)
    cluster.storage[wiped].kill()
    wipe_data_dir(cluster.data_dirs[wiped])
    cluster.storage[wiped].start()
    _wait_running(cluster)
    _wait_ring(cluster, wiped)
    assert replica_meta(address, _key(names[1])) is None

    # reads routed to the recovering node (R=1) never answer 404 or other bytes for an object that exists
    bad: list[tuple[str, int]] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        i = 1
        while not stop.is_set():
            n = names[1 + (i * 7) % (len(names) - 1)]
            i += 1
            try:
                status, data = _coordinated_read(address, _key(n))
            except OSError:
                continue  # the node is being killed and restarted
            reads += 1
            time.sleep(0.1)  # a light client load: the recovery, not read-repair, restores most keys
            if status == 503:
                continue  # refused: the gateway would try the next replica
            if status != 200 or data != _body(n):
                bad.append((n, status))

    started = time.monotonic()
    result = cluster.adm("recover-node", wiped, "--rate", "30", "--no-wait")
    assert result["state"] == "running", result
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        cluster.wait_until(lambda: _job(cluster, wiped)["pulled"] >= 10, timeout=60,
                           what="the recovery to be under way")  # fmt: skip
        # mid-recovery, the node and a peer are killed: the node resumes from its checkpoint and
        # retries its calls to the peer until it is back
        cluster.storage[wiped].kill()
        cluster.storage["storage1"].kill()
        _start_all(cluster, [wiped, "storage1"])
        _wait_ring(cluster, wiped)
        status = _wait_job(cluster, wiped, timeout=120)
    finally:
        stop.set()
        thread.join(30)
    took = time.monotonic() - started
    failures = [line for line in cluster.storage[wiped].log().splitlines() if "failed" in line]
    assert status["resumes"] >= 1 and status["failed"] == 0, (status, failures[-10:])
    assert not bad, bad[:10]
    assert reads > 0
    for n in names:
        clocks = _clocks(cluster, n)
        assert len(set(clocks.values())) == 1 and clocks[wiped] is not None, (n, clocks)
    assert replica_meta(address, _key(names[0])).tombstone  # type: ignore[union-attr]
    print(f"recover-node: {status['pulled']} objects, {status['bytes_copied']} bytes in {took:.1f} s at --rate 30")
