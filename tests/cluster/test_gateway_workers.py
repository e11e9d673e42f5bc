"""`leofs gateway --workers 2` on a real cluster: both processes answer S3 on one port while the
manager knows one gateway; purge-cache through the manager drops the entry in both processes'
caches (http mode, where a process would otherwise serve its copy for the whole TTL); a SIGKILLed
worker is started again; killing the primary takes the worker down with it."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.per_process import answers
from tests.support.servers import listens_on, process_tree


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    c = LeofsCluster(tmp_path_factory.mktemp("gw-workers"), nodes=1, n=1, w=1, r=1, d=1,
                     gateway_args=("--workers", "2", "--cache-mode", "http", "--cache-http-ttl", "300"))  # fmt: skip
    with running(c) as started:
        wait_processes(started, 2)
        yield started


def gateway_pids(cluster: LeofsCluster) -> list[int]:
    proc = cluster.gateway.proc
    return process_tree(proc.pid) if proc is not None and proc.poll() is None else []


def wait_processes(cluster: LeofsCluster, count: int) -> list[int]:
    """The gateway's processes once ``count`` of them listen on its S3 port."""
    deadline = time.monotonic() + 30
    while True:
        pids = gateway_pids(cluster)
        if len(pids) == count and all(listens_on(p, cluster.gateway_port) for p in pids):
            return pids
        assert time.monotonic() < deadline, f"{count} gateway processes never listened (have {pids})"
        time.sleep(0.1)


def test_both_processes_serve_and_the_manager_sees_one_gateway(cluster: LeofsCluster) -> None:
    make_client(cluster.endpoint).create_bucket(Bucket="wkr")
    seen = set()
    for i in range(30):  # a bucket created through one process is known to the other at once
        put = make_client(cluster.endpoint).put_object(Bucket="wkr", Key=f"k{i}", Body=b"v%d" % i)
        seen.add(put["ResponseMetadata"]["RequestId"][:8])
    assert len(seen) == 2
    for i in range(30):
        assert make_client(cluster.endpoint).get_object(Bucket="wkr", Key=f"k{i}")["Body"].read() == b"v%d" % i
    gateways = [n for n in cluster.adm("status")["nodes"] if n["type"] == "gateway"]
    assert [g["state"] for g in gateways] == ["running"], gateways
    for _ in range(6):  # request metrics are summed over both processes, whichever answers the scrape
        with urllib.request.urlopen(f"{cluster.endpoint}/_leofs_adm/metrics", timeout=10) as r:
            text = r.read().decode()
        puts = [line for line in text.splitlines()
                if line.startswith('leofs_s3_requests_total{operation="PutObject",status="200"}')]  # fmt: skip
        assert puts and float(puts[0].split()[-1]) == 30.0, puts
        types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(types) == len(set(types)), "a metric family appears twice"


def test_purge_cache_reaches_both_processes(cluster: LeofsCluster) -> None:
    make_client(cluster.endpoint).create_bucket(Bucket="pub", ACL="public-read")
    stale_in: set[str] = set()
    for round_ in range(12):  # until each process was once the one holding the old copy
        key = f"page{round_}.html"
        url = f"{cluster.endpoint}/pub/{key}"
        old, new = os.urandom(64), os.urandom(64)
        make_client(cluster.endpoint).put_object(Bucket="pub", Key=key, Body=old, ACL="public-read",
                                                 ContentType="text/html")  # fmt: skip
        assert all(b == old for bodies in answers(url, until=1).values() for b in bodies)  # both caches hold it
        put = make_client(cluster.endpoint).put_object(Bucket="pub", Key=key, Body=new, ACL="public-read",
                                                       ContentType="text/html")  # fmt: skip
        writer = put["ResponseMetadata"]["RequestId"][:8]  # the process that wrote dropped its copy
        seen = answers(url, until=2)
        [other] = set(seen) - {writer}
        assert all(b == old for b in seen[other]), seen  # http mode: the other one serves its copy (TTL 300 s)
        [row] = cluster.adm("purge-cache", f"pub/{key}")
        assert row["ok"] and row["result"]["purged"] and row["result"]["cache"] == "http", row
        assert [(p["process"], p["ok"]) for p in row["result"]["processes"]] == [(0, True), (1, True)], row
        seen = answers(url, until=3)  # neither process answers from its old entry any more
        assert all(b == new for bodies in seen.values() for b in bodies), seen
        stale_in.add(other)
        if len(stale_in) == 2:
            break
    assert len(stale_in) == 2, "every write landed on one process: the forwarded purge was never needed"


def test_sighup_is_passed_on_and_kills_nobody(cluster: LeofsCluster) -> None:
    pids = wait_processes(cluster, 2)
    os.kill(pids[0], signal.SIGHUP)  # the primary reloads and passes it on; a worker reloads too
    time.sleep(0.5)  # a worker killed by the signal would be gone (and replaced) by now
    assert wait_processes(cluster, 2) == pids
    assert make_client(cluster.endpoint).get_object(Bucket="wkr", Key="k0")["Body"].read() == b"v0"


def test_a_killed_worker_is_restarted(cluster: LeofsCluster) -> None:
    assert cluster.gateway.proc is not None
    primary = cluster.gateway.proc.pid
    [worker] = [p for p in wait_processes(cluster, 2) if p != primary]
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        pids = wait_processes(cluster, 2)
        if worker not in pids:
            break
        assert time.monotonic() < deadline, "the killed worker was never replaced"
        time.sleep(0.1)
    seen = set()
    for i in range(20):
        got = make_client(cluster.endpoint).get_object(Bucket="wkr", Key=f"k{i}")
        assert got["Body"].read() == b"v%d" % i
        seen.add(got["ResponseMetadata"]["RequestId"][:8])
    assert len(seen) == 2  # the new worker serves too


def test_killing_the_primary_takes_the_workers_down(cluster: LeofsCluster) -> None:
    proc = cluster.gateway.proc
    assert proc is not None
    pids = wait_processes(cluster, 2)
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in pids):
        assert time.monotonic() < deadline, "a gateway worker outlived its primary"
        time.sleep(0.1)
    assert not any(listens_on(p, cluster.gateway_port) for p in pids)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2 :].split()[0]
