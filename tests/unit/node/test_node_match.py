"""GET /obj?match=CLOCK: the validation of a gateway cache hit. The node answers 304 with the
entry and no body while its (compared) version has that clock, and the data otherwise."""

from __future__ import annotations

from pathlib import Path

from leofs.internal.messages import ROLE_COORDINATE, PutHeader
from tests.unit.node.nodetest_helpers import TestCluster, run_cluster


def test_match_answers_without_the_body_only_for_the_current_version(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        status, first = await c.put("s1", b"b/k", b"one" * 1000, header=PutHeader(meta=b"M"))
        assert status == 200 and first is not None
        status, data, entry = await c.get("s1", b"b/k", role=ROLE_COORDINATE, match=first.clock)
        assert (status, data) == (304, b"") and entry is not None and entry.clock == first.clock
        assert entry.meta == b"M"
        status, second = await c.put("s2", b"b/k", b"two", header=PutHeader())
        assert status == 200 and second is not None
        for node in ("s1", "s2"):  # R=2: the coordinator compares, so either sees the new version
            status, data, entry = await c.get(node, b"b/k", role=ROLE_COORDINATE, match=first.clock)
            assert (status, data) == (200, b"two") and entry is not None and entry.clock == second.clock
        assert (await c.delete("s1", b"b/k"))[0] == 200
        status, _, _ = await c.get("s1", b"b/k", role=ROLE_COORDINATE, match=second.clock)
        assert status == 404  # deleted: never "match"

    run_cluster(tmp_path, body, r=2)
