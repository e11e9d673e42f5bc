"""A coordinator facing a failing replica: the breaker skips it (its write is queued for repair at
once, W still met by real acks), and a gateway's write that arrives after its deadline is refused."""

from __future__ import annotations

import time
from pathlib import Path

from leofs.internal.messages import DEADLINE_HEADER, PUT_HEADER, ROLE_COORDINATE, ROLE_HEADER, PutHeader, encode_b64
from tests.unit.node.nodetest_helpers import TestCluster, eventually, q, run_cluster


def test_a_replica_whose_breaker_is_open_is_skipped_and_queued(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        coordinator = c.nodes["s1"].coordinator
        coordinator.health.failed("s3")  # as after a call to s3 timed out
        status, entry = await c.put("s1", b"b/skip", b"data")
        assert status == 200 and entry is not None
        # not sent: queued for repair before the answer, and s3 has nothing
        assert [(t.target, t.clock) for t in c.nodes["s1"].queue.all()] == [("s3", entry.clock)]
        assert c.local("s3", b"b/skip") is None
        assert coordinator.health.stats()["s3"]["skipped"] >= 1
        # with s2 failing too, W=2 cannot be met without s3: it is tried after all (real acks only)
        coordinator.health.failed("s2")
        status, second = await c.put("s1", b"b/both", b"data")
        assert status == 200 and second is not None
        await eventually(lambda: c.local("s3", b"b/both") is not None or c.local("s2", b"b/both") is not None)
        # the probe finds s3 answering: the breaker closes and the queue drains to it
        await eventually(lambda: not coordinator.health.is_open("s3"), timeout=15)
        await eventually(lambda: (c.local("s3", b"b/skip") or entry).clock == entry.clock
                         and c.local("s3", b"b/skip") is not None, timeout=15)  # fmt: skip

    run_cluster(tmp_path, body)


def test_a_write_that_arrives_after_its_deadline_is_refused(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        for deadline, expected in ((time.time() - 1.0, 503), (time.time() + 30.0, 200)):
            headers = {ROLE_HEADER: ROLE_COORDINATE, PUT_HEADER: encode_b64(PutHeader()),
                       DEADLINE_HEADER: f"{deadline:.3f}"}  # fmt: skip
            async with c.client.request("PUT", c.addr("s1"), "/obj", params=q(0, b"b/late"), data=b"x",
                                        headers=headers) as resp:  # fmt: skip
                assert resp.status == expected, await resp.text()
            if expected == 503:  # refused before it got a clock: written nowhere, nothing queued
                assert all(c.local(n, b"b/late") is None for n in c.names)
                assert not c.nodes["s1"].queue.all()

    run_cluster(tmp_path, body)
