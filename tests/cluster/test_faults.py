"""Node failures under a steady S3 load (N=3 W=2 R=1 D=2, one cluster for the module, every node
behind a proxy): SIGKILL, SIGSTOP and a black-holed network path. No request may fail, none may
take longer than a few seconds, and every acknowledged write ends up on all three replicas, equal.

The figures (time to detect, time to recover, slowest request) are printed (``-s``) and quoted in
docs/operations.md, "Node failure"."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.faults import processes
from tests.cluster.faults.load import SteadyLoad
from tests.cluster.faults.processes import ProxiedCluster
from tests.integration.conftest import make_client
from tests.support.cluster import running
from tests.support.internal import replica_meta, replica_read
from tests.support.servers import CLUSTER_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

BUCKET = "faults"
#: "a few seconds": the longest any request may take while a node hangs (the gateway waits at most
#: one call's timeout on it, 3-4 s by default, then tries the next replica and skips it after)
SLOWEST = 8.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedCluster]:
    c = ProxiedCluster(Path(tmp_path_factory.mktemp("faults")) / "cluster")
    with running(c, after_stop=c.close_proxies):
        make_client(c.endpoint).create_bucket(Bucket=BUCKET)
        yield c


def _wait_ops(load: SteadyLoad, puts: int, timeout: float = 60.0) -> None:
    """Let the load make ``puts`` more PUT requests (bounded)."""
    target = sum(op.kind == "put" for op in load.ops) + puts
    deadline = time.monotonic() + timeout
    while sum(op.kind == "put" for op in load.ops) < target:
        assert time.monotonic() < deadline, "the load made no progress"
        time.sleep(0.05)


def _replicas_equal(cluster: ProxiedCluster, objects: dict[str, bytes]) -> list[str]:
    """The keys that are not on all three nodes with the same clock and the acknowledged bytes."""
    bad = []
    for key, body in objects.items():
        engine_key = f"{BUCKET}/{key}".encode()
        metas = [replica_meta(cluster.storage_address(n), engine_key) for n in cluster.storage]
        clocks = {m.clock if m is not None and not m.tombstone else None for m in metas}
        reads = {replica_read(cluster.storage_address(n), engine_key) for n in cluster.storage}
        if None in clocks or len(clocks) != 1 or reads != {(200, body)}:
            bad.append(key)
    return bad


def _check_load(load: SteadyLoad, what: str) -> None:
    failures = load.failures()
    assert not failures, f"{what}: {len(failures)} requests failed, first: {failures[:3]}"
    slowest = load.slowest()
    print(f"{what}: {len(load.ops)} requests, slowest {slowest.seconds:.2f} s ({slowest.kind} {slowest.key})")
    assert slowest.seconds < SLOWEST, f"{what}: {slowest} took longer than {SLOWEST} s"


def test_sigkill_loses_no_write_and_the_node_returns_with_every_write(cluster: ProxiedCluster) -> None:
    victim = "storage2"
    with SteadyLoad(cluster.endpoint, BUCKET, prefix="kill", seed=1) as load:
        _wait_ops(load, 10)
        killed = time.monotonic()
        processes.kill(cluster, victim)
        cluster.wait_until(lambda: cluster.node_states()[victim] == "stop", timeout=30, what=f"{victim} stop")
        detected = time.monotonic()
        _wait_ops(load, 20)  # writes while the cluster knows it is down: repair tasks toward it
        back = time.monotonic()
        processes.restart(cluster, victim)
        cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=60,
                           what=f"{victim} running again")  # fmt: skip
        running = time.monotonic()
        assert not load.failures(), load.failures()[:3]
        missed = load.written_between(killed, back)
        assert len(missed) >= 10  # (20 PUTs were made while it was known down)
        # `running` means the repair queues toward it are empty: every write it missed is there now
        assert _replicas_equal(cluster, missed) == []
        _wait_ops(load, 10)
    print(f"SIGKILL: marked stop after {detected - killed:.1f} s; running {running - back:.1f} s after its restart "
          f"({len(missed)} writes missed and repaired)")
    _check_load(load, "SIGKILL")
    # every acknowledged write is on three equal replicas (the last ones may still be on their way)
    cluster.wait_until(lambda: not _replicas_equal(cluster, {k: b for k, (b, _) in load.acked.items()}),
                       timeout=30, what="three equal replicas of every acknowledged write")  # fmt: skip
    # the repair is visible: the other nodes replayed at least every write it missed, their queues are empty
    stats = {n: cluster.adm("mq-stats", n)["queues"][0] for n in cluster.storage if n != victim}
    assert sum(s["targets"][victim]["replayed"] for s in stats.values()) >= len(missed), stats
    assert all(s["targets"][victim]["count"] == 0 for s in stats.values()), stats
    human = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", cluster.manager_address,
                            "--cluster-secret", CLUSTER_SECRET, "mq-stats", "storage1"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith("storage1: repair") and "replayed" in human.stdout, human.stdout
    assert any(line.startswith(victim) for line in human.stdout.splitlines()), human.stdout
    sample = sorted(missed)[:: max(1, len(missed) // 3)][:3]
    for key in sample:
        rows = cluster.adm("whereis", f"{BUCKET}/{key}")["replicas"]
        assert len(rows) == 3 and len({r["clock"] for r in rows}) == 1 and all(r["clock"] for r in rows), rows


def test_sigstop_costs_each_request_a_bounded_delay(cluster: ProxiedCluster) -> None:
    victim = "storage3"
    with SteadyLoad(cluster.endpoint, BUCKET, prefix="stop", seed=2) as load:
        _wait_ops(load, 10)
        frozen = time.monotonic()
        with processes.paused(cluster, victim):
            cluster.wait_until(lambda: cluster.node_states()[victim] == "stop", timeout=30, what=f"{victim} stop")
            _wait_ops(load, 15)
        thawed = time.monotonic()
        cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=60,
                           what=f"{victim} running again")  # fmt: skip
        running = time.monotonic()
        missed = load.written_between(frozen, thawed)
        assert _replicas_equal(cluster, missed) == []
        _wait_ops(load, 10)
    print(f"SIGSTOP: {thawed - frozen:.1f} s frozen, running {running - thawed:.1f} s after SIGCONT")
    _check_load(load, "SIGSTOP")


def test_a_black_holed_node_costs_each_request_a_bounded_delay(cluster: ProxiedCluster) -> None:
    """The manager still hears the node (its heartbeats do not pass the proxy), so it stays
    `running`: only the breakers of the gateway and the coordinators keep requests off it."""
    victim = "storage1"
    proxy = cluster.proxies[victim]
    with SteadyLoad(cluster.endpoint, BUCKET, prefix="hole", seed=3) as load:
        _wait_ops(load, 10)
        start = time.monotonic()
        with proxy.blackholed():
            _wait_ops(load, 40)
            assert cluster.node_states()[victim] == "running"
            # the gateway's breaker is what keeps requests off it
            with urllib.request.urlopen(f"{cluster.endpoint}/_leofs_adm/metrics", timeout=10) as resp:
                text = resp.read().decode()
            found = re.search(rf'^leofs_node_calls_skipped{{node="{victim}"}} (\S+)$', text, re.M)
            assert found is not None and float(found.group(1)) > 0, text[-3000:]
        healed = time.monotonic()
        _wait_ops(load, 10)
    _check_load(load, "black hole")
    during = load.written_between(start, healed)
    cluster.wait_until(lambda: not _replicas_equal(cluster, during), timeout=30,
                       what=f"the writes {victim} missed repaired")  # fmt: skip
    print(f"black hole: {healed - start:.1f} s, {len(during)} writes; repaired {time.monotonic() - healed:.1f} s "
          "after the heal")
