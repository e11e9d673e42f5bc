"""The repair queue across a coordinator crash: an acknowledged write reaches every replica even when
the coordinator is SIGKILLed after W acks but before its last replica answered (or failed)."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leofs.ring import Member, build_ring
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.internal import replica_meta, replica_read

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LeofsCluster]:
    with running(LeofsCluster(tmp_path / "cluster")) as c:
        yield c


def _ring(cluster: LeofsCluster) -> Any:
    status = cluster.adm("status")
    members = [Member(n["name"], n["address"], n.get("rack"), n.get("vnodes", 168))
               for n in status["nodes"] if n["type"] == "storage"]
    return build_ring(members, replicas=3)


def _key_coordinated_by(ring: Any, bucket: str, node: str, tag: str) -> str:
    """A key whose redundancy list starts with ``node``: the gateway sends its writes there."""
    for i in range(10_000):
        key = f"{tag}-{i}"
        if ring.redundancy(f"{bucket}/{key}".encode())[0].name == node:
            return key
    raise AssertionError(f"no key coordinated by {node}")


def test_acknowledged_write_reaches_the_straggler_after_the_coordinator_is_killed(cluster: LeofsCluster) -> None:
    """Per round: one replica is frozen (SIGSTOP, so it accepts the connection and never answers), a
    PUT is acknowledged by the other two (W=2), the coordinator is SIGKILLed right after the ack (its
    request to the frozen replica still waiting), then the replica thaws and the coordinator restarts.
    Every replica must end up with the acknowledged version: the repair task was durable before the ack."""
    s3 = make_client(cluster.endpoint, connect_timeout=3, read_timeout=30)
    s3.create_bucket(Bucket="straggle")
    ring = _ring(cluster)
    names = list(cluster.storage)
    acked: dict[str, bytes] = {}
    for round_, coordinator in enumerate(names):
        straggler = names[(round_ + 1) % len(names)]
        key = _key_coordinated_by(ring, "straggle", coordinator, f"r{round_}")
        body = os.urandom(20_000 + round_)
        frozen = cluster.storage[straggler].proc
        assert frozen is not None
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            s3.put_object(Bucket="straggle", Key=key, Body=body)  # acknowledged: W=2 without the straggler
            acked[key] = body
            cluster.storage[coordinator].kill()  # within the replica timeout: the straggler has not failed yet
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        cluster.storage[coordinator].start()
        cluster.wait_until(lambda c=coordinator: cluster.node_states()[c] == "running", timeout=30,
                           what=f"{coordinator} running again")  # fmt: skip

    def converged(key: str, body: bytes) -> bool:
        entries = [replica_meta(cluster.storage_address(n), f"straggle/{key}".encode()) for n in names]
        return all(e is not None and e.md5 == hashlib.md5(body).digest() for e in entries) and len(
            {e.clock for e in entries if e is not None}) == 1

    for key, body in acked.items():
        cluster.wait_until(lambda k=key, b=body: converged(k, b), timeout=60, what=f"every replica of {key}")
        for name in names:  # each node's own copy, bytes included
            assert replica_read(cluster.storage_address(name), f"straggle/{key}".encode()) == (200, body), name
        assert s3.get_object(Bucket="straggle", Key=key)["Body"].read() == body
    for name in names:  # nothing left over: the stragglers' tasks were settled or replayed
        cluster.wait_until(lambda n=name: cluster.adm("mq-stats", n)["queues"][0]["length"] == 0, timeout=60,
                           what=f"{name}'s repair queue to drain")  # fmt: skip
