"""The embedded server's worker processes: they share the S3 port, see each other's changes at
once, count metrics together, are replaced when they die, and die with the primary."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import make_client
from tests.support.servers import LeofsServer

pytestmark = pytest.mark.slow

WORKERS = 3


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LeofsServer]:
    server = LeofsServer(tmp_path / "data", extra_args=["--workers", str(WORKERS)])
    server.start()
    assert server.proc is not None
    server.wait_workers(WORKERS)  # every worker listens on the S3 port
    yield server
    server.stop()


def fresh(server: LeofsServer) -> Any:
    """A client with its own connections (the kernel picks a process per connection)."""
    return make_client(server.endpoint)


def process_of(response: dict[str, Any]) -> str:
    # Request ids are a random per-process prefix plus a counter (gateway/context.py).
    return str(response["ResponseMetadata"]["RequestId"][:8])


def test_every_process_answers_and_sees_the_others_changes(srv: LeofsServer) -> None:
    fresh(srv).create_bucket(Bucket="shared")
    seen = set()
    for i in range(40):  # bucket just created elsewhere: every process knows it at once
        seen.add(process_of(fresh(srv).put_object(Bucket="shared", Key=f"k{i}", Body=b"v%d" % i)))
    assert len(seen) == WORKERS
    for i in range(40):  # writes made through any process read back from any other
        assert fresh(srv).get_object(Bucket="shared", Key=f"k{i}")["Body"].read() == b"v%d" % i
    keys = [o["Key"] for o in fresh(srv).list_objects_v2(Bucket="shared")["Contents"]]
    assert len(keys) == 40
    for i in range(40):
        fresh(srv).delete_object(Bucket="shared", Key=f"k{i}")
    fresh(srv).delete_bucket(Bucket="shared")
    for _ in range(15):  # and a deleted bucket is gone everywhere at once
        with pytest.raises(ClientError) as err:
            fresh(srv).put_object(Bucket="shared", Key="late", Body=b"x")
        assert err.value.response["Error"]["Code"] == "NoSuchBucket"
    # Request metrics are counted over all processes and storage metrics come from the primary:
    # whichever process answers a scrape reports the same, once per metric family.
    for _ in range(12):
        with urllib.request.urlopen(f"{srv.endpoint}/_leofs_adm/metrics") as r:
            text = r.read().decode()
        puts = [line for line in text.splitlines()
                if line.startswith('leofs_s3_requests_total{operation="PutObject",status="200"}')]  # fmt: skip
        assert puts and float(puts[0].split()[-1]) == 40.0
        assert 'leofs_storage_syncs_total{node="embedded"}' in text
        types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(types) == len(set(types)), "a metric family appears twice"
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"leofs_s3_requests", "leofs_storage_syncs"} <= families


def test_a_killed_worker_is_replaced(srv: LeofsServer) -> None:
    assert srv.proc is not None
    s3 = fresh(srv)
    s3.create_bucket(Bucket="bucket-b")
    s3.put_object(Bucket="bucket-b", Key="k", Body=b"before")
    before = children(srv.proc.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: (c := children(srv.proc.pid)) and len(c) == WORKERS - 1 and victim not in c and c)  # type: ignore[union-attr]
    assert replaced != before
    srv.wait_workers(WORKERS)  # the new worker listens before the checks
    for i in range(20):
        fresh(srv).put_object(Bucket="bucket-b", Key=f"after{i}", Body=b"a")
        assert fresh(srv).get_object(Bucket="bucket-b", Key="k")["Body"].read() == b"before"


def test_killing_the_primary_takes_every_worker_down(srv: LeofsServer) -> None:
    assert srv.proc is not None
    s3 = fresh(srv)
    s3.create_bucket(Bucket="bucket-b")
    for i in range(10):  # acknowledged through any of the processes
        fresh(srv).put_object(Bucket="bucket-b", Key=f"k{i}", Body=b"v%d" % i)
    workers = children(srv.proc.pid)
    assert len(workers) == WORKERS - 1
    srv.kill()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers), 10)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    srv.start()
    for i in range(10):
        assert fresh(srv).get_object(Bucket="bucket-b", Key=f"k{i}")["Body"].read() == b"v%d" % i


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2 :].split()[0]
