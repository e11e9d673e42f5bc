"""`leofs adm purge-cache` on the embedded server with two processes, each with its own cache: the
primary forwards the purge to its worker over the worker's control socket and answers once both
dropped the entry. The disk tier keeps one file per entry in a directory per process
(CACHE/<process index>), so what each process holds is visible from outside.

On the embedded server a cached copy is never served stale, in either mode: every read heads the
shared index first (only inner mode caches there, validated by the clock), so a purge here frees
the space; tests/cluster/test_gateway_workers.py shows a purge ending stale http-mode copies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import make_client
from tests.support.per_process import answers
from tests.support.servers import CLUSTER_SECRET, LeofsServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsServer]:
    base = tmp_path_factory.mktemp("purge-workers")
    # values of 4 KiB and more go to the disk tier, one file each
    srv = LeofsServer(base / "data", extra_args=["--workers", "2", "--cache-ram", "8MiB", "--cache-ram-threshold",
                                                 "4096", "--cache-disk", f"{base / 'cache'}:64MiB"])  # fmt: skip
    srv.start()
    srv.wait_workers(2)
    yield srv
    srv.stop()


def cached_files(server: LeofsServer) -> dict[str, int]:
    """Files in each process's disk-tier directory (0: the primary, 1: the worker)."""
    cache = server.data_dir.parent / "cache"
    return {slot: sum(1 for f in (cache / slot).rglob("*") if f.is_file() and not f.name.endswith(".tmp"))
            for slot in ("0", "1")}  # fmt: skip


def adm(server: LeofsServer, *args: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET]
    return subprocess.run([*cmd, *(["--json"] if json_out else []), *args], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip


def test_purge_cache_reaches_every_process(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket="pub", ACL="public-read")
    body = os.urandom(10_000)
    s3.put_object(Bucket="pub", Key="page.html", Body=body, ACL="public-read")
    before = cached_files(server)
    seen = answers(f"{server.endpoint}/pub/page.html", until=2)  # both processes cache it on their first read
    assert all(b == body for bodies in seen.values() for b in bodies)
    assert cached_files(server) == {"0": before["0"] + 1, "1": before["1"] + 1}
    [row] = json.loads(adm(server, "purge-cache", "pub/page.html").stdout)
    assert row["gateway"] == "embedded" and row["ok"], row
    assert row["result"]["purged"] and row["result"]["cache"] == "inner", row
    rows = [(p["process"], p["ok"], p["purged"]) for p in row["result"]["processes"]]
    assert rows == [(0, True, True), (1, True, True)], row
    assert cached_files(server) == before  # both entries gone when the answer came
    again = json.loads(adm(server, "purge-cache", "pub/page.html").stdout)
    assert not again[0]["result"]["purged"], again  # nothing left anywhere
    seen = answers(f"{server.endpoint}/pub/page.html", until=1)  # still served, cached again
    assert all(b == body for bodies in seen.values() for b in bodies)


def test_purge_cache_text_output_and_bad_path(server: LeofsServer) -> None:
    out = adm(server, "purge-cache", "pub/never-cached", json_out=False)
    assert out.stdout.strip() == "embedded: purged"
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET]
    bad = subprocess.run([*cmd, "purge-cache", "no-key"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "BUCKET/KEY" in bad.stderr + bad.stdout


def test_a_dead_worker_holds_nothing(server: LeofsServer) -> None:
    """A worker killed (and being restarted) does not fail the purge: it holds no entry any more."""
    assert server.proc is not None
    [worker] = [p for p in server.wait_workers(2) if p != server.proc.pid]
    os.kill(worker, signal.SIGKILL)
    [row] = json.loads(adm(server, "purge-cache", "pub/page.html").stdout)
    assert row["ok"] and [p["ok"] for p in row["result"]["processes"]] == [True, True], row
    deadline = time.monotonic() + 30
    while worker in server.wait_workers(2):  # replaced, listening again
        assert time.monotonic() < deadline, "the killed worker was never replaced"
        time.sleep(0.1)


def test_the_control_sockets_are_private(server: LeofsServer) -> None:
    assert server.proc is not None
    runtime = list(Path(tempfile.gettempdir()).glob(f"leofs-server-{server.proc.pid}-*"))
    assert len(runtime) == 1 and (runtime[0].stat().st_mode & 0o777) == 0o700
    sockets = sorted(runtime[0].glob("worker-*.sock"))
    assert [s.name for s in sockets] == ["worker-1.sock"]
    assert all((s.stat().st_mode & 0o777) == 0o600 for s in sockets)
