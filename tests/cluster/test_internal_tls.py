"""A 3-node cluster (N=3 W=2 R=1 D=2) with TLS on every internal link (one module-scoped cluster):
objects small and chunked through boto3, a listing, ``leofs adm`` over mutual TLS, a SIGKILLed node
that restarts and catches up through its peers' repair queues, and internal ports that speak nothing
but TLS."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.servers import CLUSTER_SECRET, process_tree
from tests.support.tls import member_files, tls_env

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "tls"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    base = Path(tmp_path_factory.mktemp("internal-tls"))
    # one certificate for 127.0.0.1 serves every process of this one-host cluster (and leofs adm)
    env = tls_env(member_files(trustme.CA(), base / "tls", "member"))
    with running(LeofsCluster(base / "cluster", env=env)) as c:
        make_client(c.endpoint).create_bucket(Bucket=BUCKET)
        yield c


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_objects_listings_and_adm_over_internal_tls(cluster: LeofsCluster) -> None:
    s3 = make_client(cluster.endpoint, read_timeout=60)
    small, big = os.urandom(3000), os.urandom(6 * MIB + 123)  # big: chunked (> 5.5 MiB), chunks of 5 MiB
    s3.put_object(Bucket=BUCKET, Key="a/small", Body=small)
    s3.put_object(Bucket=BUCKET, Key="a/big", Body=big)
    assert s3.get_object(Bucket=BUCKET, Key="a/small")["Body"].read() == small
    assert _md5(s3.get_object(Bucket=BUCKET, Key="a/big")["Body"].read()) == _md5(big)
    ranged = s3.get_object(Bucket=BUCKET, Key="a/big", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")["Body"].read()
    assert ranged == big[5 * MIB - 10 : 5 * MIB + 10]  # across the chunk boundary
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("a/big", len(big)), ("a/small", len(small))]
    s3.delete_object(Bucket=BUCKET, Key="a/small")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")["Contents"]] == ["a/big"]
    # leofs adm over mutual TLS (the shared variables): every member seen running
    status = cluster.adm("status")
    assert {n["name"]: n["state"] for n in status["nodes"] if n["type"] == "storage"} == dict.fromkeys(
        cluster.storage, "running")  # fmt: skip
    assert any(n["type"] == "gateway" for n in status["nodes"])
    where = cluster.adm("whereis", f"{BUCKET}/a/big")  # the manager asks every replica, over TLS
    assert len(where["replicas"]) == 3 and {r["status"] for r in where["replicas"]} == {"ok"}, where


def _plaintext_answer(port: int) -> bytes:
    """What a plaintext HTTP request to ``port`` gets back before the connection closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /int/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_internal_ports_speak_only_tls(cluster: LeofsCluster) -> None:
    ports = [cluster.manager_port, cluster.gateway_admin_port, *(s.ports[0] for s in cluster.storage.values())]
    for port in ports:
        assert b"HTTP/" not in _plaintext_answer(port), port
    # leofs adm without the TLS files: a clear error, no hang
    env = {k: v for k, v in cluster.env.items() if not k.startswith("LEOFS_INTERNAL_TLS_")}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", cluster.manager_address,
                          "--cluster-secret", CLUSTER_SECRET, "status"], capture_output=True, text=True,
                         timeout=60, env=env)  # fmt: skip
    assert out.returncode != 0 and "cannot reach the manager" in out.stderr, out.stderr
    assert time.monotonic() - started < 30  # a generous bound: it must not wait for a long timeout


def test_a_killed_node_restarts_and_catches_up_over_tls(cluster: LeofsCluster) -> None:
    s3 = make_client(cluster.endpoint, read_timeout=60, connect_timeout=10)
    victim = "storage2"
    cluster.storage[victim].kill()
    cluster.wait_until(lambda: cluster.node_states()[victim] == "stop", timeout=60, what=f"{victim} marked stop")
    written = {f"down/{i}": os.urandom(2000 + i) for i in range(6)}
    for key, body in written.items():  # W=2: the two live replicas acknowledge, the third is queued
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    cluster.storage[victim].start()
    cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=90, what=f"{victim} running")

    def caught_up() -> bool:
        for key in written:
            rows = cluster.adm("whereis", f"{BUCKET}/{key}")["replicas"]
            if not any(r["node"] == victim and r["status"] == "ok" for r in rows):
                return False
        return True

    cluster.wait_until(caught_up, timeout=90, what=f"the repair queues to fill {victim} in")
    for key, body in written.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_a_gateway_with_worker_processes_uses_internal_tls_in_each(cluster: LeofsCluster) -> None:
    gateway = cluster.add_gateway("gw-workers", ("--workers", "2"))
    endpoint = f"http://127.0.0.1:{gateway.ports[0]}"
    body = os.urandom(MIB + 17)
    make_client(endpoint).put_object(Bucket=BUCKET, Key="w/obj", Body=body)
    for _ in range(8):  # fresh connections: the kernel spreads them over both processes
        assert make_client(endpoint).get_object(Bucket=BUCKET, Key="w/obj")["Body"].read() == body
    assert gateway.proc is not None and len(process_tree(gateway.proc.pid)) == 2  # the worker kept running
