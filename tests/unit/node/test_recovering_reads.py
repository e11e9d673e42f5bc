"""Reads from a node that recover-node is rebuilding: compared with every other replica (its own copy
may be older), a key it lacks answered from the others, and refused (503, the gateway tries the next
replica) when none of them answers, never 404."""

from __future__ import annotations

from pathlib import Path

from leofs.internal.messages import ROLE_COORDINATE, ROLE_REPLICA, PutHeader
from tests.unit.node.nodetest_helpers import TestCluster, run_cluster


def test_a_recovering_node_never_answers_404_for_a_key_it_lacks(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        s1 = c.nodes["s1"]
        s1.coordinator.recovering = True  # as while a recover-node job runs
        for other in ("s2", "s3"):  # a key only the other replicas hold
            status, _ = await c.put(other, b"b/k", b"data", role=ROLE_REPLICA, header=PutHeader(clock=7, timestamp=7))
            assert status == 200
        status, data, _ = await c.get("s1", b"b/k", role=ROLE_COORDINATE)
        assert (status, data) == (200, b"data")  # from the others (and now stored here)
        # a newer version that only another replica holds (the copy here came from a stale peer)
        status, _ = await c.put("s3", b"b/k", b"newer", role=ROLE_REPLICA, header=PutHeader(clock=8, timestamp=8))
        assert status == 200
        status, data, _ = await c.get("s1", b"b/k", role=ROLE_COORDINATE)
        assert (status, data) == (200, b"newer")  # compared with every replica (R=1 otherwise)
        await c.stop("s2")
        await c.stop("s3")  # the view still says running: their calls fail
        status, _, _ = await c.get("s1", b"b/unknown", role=ROLE_COORDINATE)
        assert status == 503
        status, _ = await c.meta("s1", b"b/unknown", role=ROLE_COORDINATE)
        assert status == 503
        status, data, _ = await c.get("s1", b"b/k", role=ROLE_COORDINATE)
        assert (status, data) == (200, b"newer")  # what it holds it serves
        s1.coordinator.recovering = False
        status, _, _ = await c.get("s1", b"b/unknown", role=ROLE_COORDINATE)
        assert status == 404  # a node not recovering trusts its own miss when nobody else answers

    run_cluster(tmp_path, body)
