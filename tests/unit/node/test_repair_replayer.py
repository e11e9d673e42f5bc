"""The repair replayer on an idle node: an empty queue is not polled, and an enqueue still wakes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from leofs.internal.messages import RepairTask
from leofs.node.repair_queue import RepairQueue, Replayer
from tests.unit.node.nodetest_helpers import eventually


class CountingQueue(RepairQueue):
    """The real SQLite queue, counting the reads the replayer makes of it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.reads += 1
        return super()._exec(sql, args)

    def _read_noting_empty(self, sql: str) -> list[tuple[Any, ...]]:
        self.reads += 1
        return super()._read_noting_empty(sql)


def test_the_empty_flag_follows_reads_and_enqueues(tmp_path: Path) -> None:
    q = RepairQueue(tmp_path / "repair.sqlite3")
    try:
        assert not q.empty  # unknown until a read says so
        assert q.depths() == {} and q.empty
        q.enqueue_sync([RepairTask(0, b"k", "s2", 7)])
        assert not q.empty
        assert q.depths() == {"s2": 1} and q.targets() == ["s2"] and not q.empty
        [(task_id, _)] = q.due(1e12)
        q.done(task_id, 7)
        assert not q.empty  # a removal does not assume the queue is empty ...
        assert q.targets() == [] and q.empty  # ... the next read finds it so
        assert asyncio.run(q.depths_async()) == {}
    finally:
        q.close()


def test_an_idle_replayer_does_not_poll_and_wakes_on_an_enqueue(tmp_path: Path) -> None:
    async def body() -> None:
        queue = CountingQueue(tmp_path / "repair.sqlite3")
        pushed: list[RepairTask] = []

        async def push(task: RepairTask) -> bool:
            pushed.append(task)
            return True

        replayer = Replayer(queue, push, lambda target: True, interval=0.02)
        replayer.start()
        try:
            await eventually(lambda: queue.empty)
            reads = queue.reads
            await asyncio.sleep(0.3)  # 15 intervals: a polling replayer would have read the queue each
            assert queue.reads == reads
            await queue.enqueue([RepairTask(0, b"k", "s2", 7)])  # as Coordinator.enqueue does
            replayer.wakeup.set()
            await eventually(lambda: [t.key for t in pushed] == [b"k"])
            await eventually(lambda: not queue.all() and replayer.replayed["s2"] == 1)
        finally:
            await replayer.stop()
            queue.close()

    asyncio.run(body())
