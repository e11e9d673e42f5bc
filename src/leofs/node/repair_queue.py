"""The coordinator's durable repair queue (LeoFS ``leo_per_object_queue``) and its replayer.

A replica write that failed or timed out, and a stale copy found by read-repair, become a
:class:`~leofs.internal.messages.RepairTask`: "bring ``target`` up to ``clock`` for (ns, key)".
Tasks live in SQLite (``DATA/repair.sqlite3``, WAL, ``synchronous=FULL``): an enqueue is on stable
storage before the coordinator answers a write that relied on it, and the queue survives restarts.
One row per (ns, key, target); enqueuing again keeps the highest clock.

The replayer pushes the coordinator's local copy of the key (data and metadata, or a tombstone) to
the target with that copy's clock. Success, or a target that already holds a newer version, ends
the task; anything else retries with exponential backoff. Targets that are not available (stopped,
or their breaker open) are left alone until they come back; then their tasks are due at once, not
after the backoff they had reached. The replayer counts, per target, the tasks it replayed and the
attempts that failed (``leofs adm mq-stats``), and the heartbeat reports the queue's depth per
target to the manager, which keeps a returning node ``recovering`` until it is 0.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from leofs.fsmode import make_private_sqlite
from leofs.internal.messages import RepairTask

log = logging.getLogger("leofs.storage.repair")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    ns INTEGER NOT NULL,
    key BLOB NOT NULL,
    target TEXT NOT NULL,
    clock INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (ns, key, target)
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (not_before);
"""


class RepairQueue:
    """SQLite-backed task table. Blocking methods; the async wrappers run them in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed enqueue survives power loss, which acknowledged writes depend on
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        make_private_sqlite(path)
        #: True once a read found no task and nothing was enqueued since: the replayer and the
        #: heartbeat then skip their queries (an idle node's queue is empty almost always)
        self.empty = False
        #: tasks added since start (a replica down or failing, or a straggler past the grace)
        self.enqueued = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- blocking API -------------------------------------------------------------------------------
    def enqueue_sync(self, tasks: list[RepairTask]) -> None:
        """Add tasks in one transaction (an existing (ns, key, target) keeps the higher clock)."""
        now = time.time()
        with self._lock:
            self.empty = False  # before the commit: whoever could see the tasks sees this first
            self.enqueued += len(tasks)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO tasks (ns, key, target, clock, attempts, not_before, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ns, key, target) DO UPDATE SET "
                    "clock = max(clock, excluded.clock), not_before = min(not_before, excluded.not_before)",
                    [(t.ns, t.key, t.target, t.clock, t.attempts, t.not_before, now) for t in tasks],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read_noting_empty(self, sql: str) -> list[tuple[Any, ...]]:
        """A read whose empty answer means the table is empty (remembered in ``empty``)."""
        with self._lock:
            rows = self._db.execute(sql).fetchall()
            self.empty = not rows  # under the lock: no enqueue commits between the read and this
            return rows

    def targets(self) -> list[str]:
        return [] if self.empty else [r[0] for r in self._read_noting_empty("SELECT DISTINCT target FROM tasks")]

    def depths(self) -> dict[str, int]:
        """Tasks per target."""
        if self.empty:
            return {}
        return {t: n for t, n in self._read_noting_empty("SELECT target, count(*) FROM tasks GROUP BY target")}

    async def depths_async(self) -> dict[str, int]:
        """:meth:`depths`, in a thread unless the queue is known to be empty (the heartbeat's case)."""
        return {} if self.empty else await asyncio.to_thread(self.depths)

    def wake(self, targets: list[str], now: float) -> None:
        """Make every task toward ``targets`` due now (they came back: no backoff left to wait)."""
        if targets:
            self._exec(f"UPDATE tasks SET not_before = ? WHERE not_before > ? AND target IN "
                       f"({','.join('?' * len(targets))})", (now, now, *targets))  # fmt: skip

    def due(self, now: float, limit: int = 64, targets: list[str] | None = None) -> list[tuple[int, RepairTask]]:
        """Tasks whose backoff has expired (for the given targets, default all), oldest first."""
        where = ""
        args: tuple[Any, ...] = (now,)
        if targets is not None:
            if not targets:
                return []
            where = f" AND target IN ({','.join('?' * len(targets))})"
            args += tuple(targets)
        rows = self._exec(
            "SELECT id, ns, key, target, clock, attempts, not_before FROM tasks WHERE not_before <= ?"
            f"{where} ORDER BY not_before, id LIMIT ?", (*args, limit))  # fmt: skip
        return [(r[0], RepairTask(r[1], bytes(r[2]), r[3], r[4], r[5], r[6])) for r in rows]

    def done(self, task_id: int, clock: int) -> None:
        """Remove a finished task, unless a newer clock was enqueued for it meanwhile."""
        self._exec("DELETE FROM tasks WHERE id = ? AND clock <= ?", (task_id, clock))

    def settle_sync(self, ns: int, key: bytes, target: str, clock: int) -> None:
        """``target`` acknowledged ``clock`` for the key: its task is moot unless it asks for newer."""
        self._exec("DELETE FROM tasks WHERE ns = ? AND key = ? AND target = ? AND clock <= ?", (ns, key, target, clock))

    def retry(self, task_id: int, attempts: int, not_before: float, error: str) -> None:
        self._exec("UPDATE tasks SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?",
                   (attempts, not_before, error[:500], task_id))  # fmt: skip

    def all(self) -> list[RepairTask]:
        rows = self._exec("SELECT ns, key, target, clock, attempts, not_before FROM tasks ORDER BY id")
        return [RepairTask(r[0], bytes(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def stats(self) -> dict[str, Any]:
        """What ``leofs adm mq-stats`` shows: length, oldest age, per-target counts and attempts."""
        now = time.time()
        count, oldest, attempts, max_attempts = self._exec(
            "SELECT count(*), min(created), coalesce(sum(attempts), 0), coalesce(max(attempts), 0) FROM tasks")[0]
        per_target = {
            t: {"count": n, "attempts": a, "next_attempt_in": max(0.0, nb - now), "last_error": err}
            for t, n, a, nb, err in self._exec(
                "SELECT target, count(*), sum(attempts), min(not_before), max(last_error) FROM tasks GROUP BY target")
        }
        return {
            "queue": "repair (leo_per_object_queue)",
            "length": count,
            "oldest_age": 0.0 if oldest is None else max(0.0, now - oldest),
            "attempts": attempts,
            "max_attempts": max_attempts,
            "targets": per_target,
        }

    # -- async wrappers -----------------------------------------------------------------------------
    async def enqueue(self, tasks: list[RepairTask]) -> None:
        if tasks:
            await asyncio.to_thread(self.enqueue_sync, tasks)

    async def settle(self, ns: int, key: bytes, target: str, clock: int) -> None:
        await asyncio.to_thread(self.settle_sync, ns, key, target, clock)


#: pushes one task; True when the target is now up to date (or the task is moot)
Pusher = Callable[[RepairTask], Awaitable[bool]]


class Replayer:
    """Background loop draining the queue with per-task exponential backoff."""

    def __init__(self, queue: RepairQueue, push: Pusher, available: Callable[[str], bool], *,
                 base: float = 0.5, cap: float = 60.0, interval: float = 0.25, parallel: int = 8) -> None:  # fmt: skip
        self.queue = queue
        self.push = push
        self.available = available
        self.base = base
        self.cap = cap
        self.interval = interval
        self.parallel = parallel
        self.wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.replayed: Counter[str] = Counter()  # per target, since this process started
        self.failed: Counter[str] = Counter()
        self._available: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # again if a cancellation was swallowed by a library call
            await asyncio.wait({task}, timeout=1.0)

    def backoff(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempts - 1)))

    async def _run(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("repair replayer failed; retrying")
                worked = 0
            if not worked:
                # an empty queue only fills through an enqueue, which sets ``wakeup``: no polling
                # then; tasks waiting for their backoff or their target are looked at every interval
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
                # arrives as the wakeup is set, and stop() would then wait for this loop forever
                try:
                    async with asyncio.timeout(None if self.queue.empty else self.interval):
                        await self.wakeup.wait()
                except TimeoutError:
                    pass
                self.wakeup.clear()

    async def run_once(self) -> int:
        """Try every due task whose target is available; returns how many were tried."""
        if self.queue.empty:
            self._available = set()
            return 0
        # a stopped node is not hammered: its tasks wait, without spending attempts, until it is back
        targets = [t for t in await asyncio.to_thread(self.queue.targets) if self.available(t)]
        back = sorted(set(targets) - self._available)
        self._available = set(targets)
        if back:
            await asyncio.to_thread(self.queue.wake, back, time.time())
        ready = await asyncio.to_thread(self.queue.due, time.time(), 256, targets)
        sem = asyncio.Semaphore(self.parallel)

        async def one(task_id: int, task: RepairTask) -> None:
            async with sem:
                try:
                    ok, error = await self.push(task), "target refused"
                except Exception as exc:  # network errors, timeouts, local read errors
                    ok, error = False, f"{type(exc).__name__}: {exc}"
                if ok:
                    self.replayed[task.target] += 1
                    await asyncio.to_thread(self.queue.done, task_id, task.clock)
                else:
                    self.failed[task.target] += 1
                    attempts = task.attempts + 1
                    await asyncio.to_thread(self.queue.retry, task_id, attempts,
                                            time.time() + self.backoff(attempts), error)  # fmt: skip

        await asyncio.gather(*(one(i, t) for i, t in ready))
        return len(ready)
