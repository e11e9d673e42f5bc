"""The repair queue across restarts, mq-stats and the other node-local admin commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leofs.internal.messages import RepairTask
from leofs.node.repair_queue import RepairQueue
from tests.unit.node.nodetest_helpers import TestCluster, eventually, run_cluster


async def adm(c: TestCluster, node: str, command: str, **args: Any) -> tuple[int, Any]:
    async with c.client.request("POST", c.addr(node), f"/adm/{command}", json=args) as resp:
        return resp.status, await resp.json()


def test_repair_queue_survives_a_restart_of_the_coordinator(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        await c.stop("s3")
        status, entry = await c.put("s1", b"b/q", b"payload")
        assert status == 200 and entry is not None
        await eventually(lambda: len(c.nodes["s1"].queue.all()) == 1)  # queued once s3's write failed
        status, stats = await adm(c, "s1", "mq-stats")
        assert status == 200 and stats["ok"]
        [queue] = stats["result"]["queues"]
        assert queue["length"] == 1 and list(queue["targets"]) == ["s3"]
        assert queue["targets"]["s3"]["state"] == "running"
        # s3 failed a call: its breaker is open, so the replayer leaves it alone until a probe answers
        assert queue["targets"]["s3"]["skipped"] is True and queue["targets"]["s3"]["replayed"] == 0
        await c.stop("s1")  # the task is on disk only now
        await c.start("s3")
        await c.start("s1")  # same data dir and port; cached ring, no manager
        assert c.nodes["s1"].cluster.rings is not None
        await eventually(lambda: (c.local("s3", b"b/q") is not None))
        assert c.local("s3", b"b/q").clock == entry.clock  # type: ignore[union-attr]
        await eventually(lambda: not c.nodes["s1"].queue.all())
        [queue] = (await adm(c, "s1", "mq-stats"))[1]["result"]["queues"]
        assert queue["length"] == 0 and queue["targets"]["s3"]["replayed"] == 1

    run_cluster(tmp_path, body)


def test_queue_keeps_the_highest_clock_per_key_and_target(tmp_path: Path) -> None:
    q = RepairQueue(tmp_path / "repair.sqlite3")
    q.enqueue_sync([RepairTask(0, b"k", "a", 5), RepairTask(0, b"k", "b", 1)])
    q.enqueue_sync([RepairTask(0, b"k", "a", 3)])
    q.enqueue_sync([RepairTask(0, b"k", "a", 9)])
    assert sorted((t.target, t.clock) for t in q.all()) == [("a", 9), ("b", 1)]
    [(task_id, _)] = q.due(1e12, targets=["a"])
    q.done(task_id, 5)  # an older push does not remove the newer task
    assert len(q.all()) == 2
    q.done(task_id, 9)
    assert [t.target for t in q.all()] == ["b"]
    q.close()
    q = RepairQueue(tmp_path / "repair.sqlite3")
    assert [t.target for t in q.all()] == ["b"] and q.stats()["length"] == 1
    q.close()


def test_node_admin_commands(tmp_path: Path) -> None:
    async def body(c: TestCluster) -> None:
        for i in range(5):
            assert (await c.put("s1", f"b/{i}".encode(), b"x" * 1000))[0] == 200
            assert (await c.put("s1", f"b/{i}".encode(), b"y" * 1000))[0] == 200
        status, du = await adm(c, "s1", "du")
        assert status == 200 and du["ok"] and sum(u["active_count"] for u in du["result"]) == 5
        status, out = await adm(c, "s1", "compact-start", containers="all", wait=True)
        assert status == 200 and out["ok"] and out["result"]["state"] == "idle"
        status, out = await adm(c, "s1", "compact-status")
        assert status == 200 and out["result"]["reclaimed_bytes"] > 0
        status, out = await adm(c, "s1", "compact-start", containers="99")
        assert status == 400 and not out["ok"] and out["error"] == "bad_argument"
        status, out = await adm(c, "s1", "diagnose-start")
        assert status == 200 and out["result"]["count"] == 0
        status, out = await adm(c, "s1", "nope")
        assert status == 404 and out["error"] == "unknown_command"
        assert (await c.get("s1", b"b/3"))[1] == b"y" * 1000

    run_cluster(tmp_path, body)
