"""Node-local admin commands over one ObjectStore: ``du``, ``compact-start``, ``compact-status`` and
``diagnose-start``. The embedded server registers them in its AdminAPI; a storage node serves them on
``POST /adm/<command>`` (the manager forwards ``leofs adm du NODE`` and friends there)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from leofs.internal.admin_http import AdminError, Command
from leofs.storage.model import Entry
from leofs.storage.store import ObjectStore


class StorageAdmin:
    """The commands, bound to a store; compactions started without ``wait`` run as tasks here."""

    def __init__(self, store: ObjectStore, *,
                 owned: Callable[[], Callable[[Entry], bool] | None] | None = None) -> None:  # fmt: skip
        """``owned`` gives, when compaction starts, the test of entries the node still owns (None:
        keep all); a storage node drops the data a rebalance left behind this way."""
        self.store = store
        self.owned = owned
        self.tasks: set[asyncio.Future[Any]] = set()

    def commands(self) -> dict[str, Command]:
        return {
            "du": self.du,
            "compact-start": self.compact_start,
            "compact-status": self.compact_status,
            "diagnose-start": self.diagnose_start,
        }

    async def du(self, args: dict[str, Any]) -> Any:
        return [msgspec.to_builtins(u) for u in self.store.usage()]

    async def compact_start(self, args: dict[str, Any]) -> Any:
        """``containers``: "all" (default) or "N[,M...]"; ``wait``: answer with the final status."""
        target = args.get("containers", "all")
        try:
            containers = None if target in ("all", None) else [int(c) for c in str(target).split(",")]
        except ValueError:
            raise AdminError("bad_argument", f"containers must be 'all' or numbers, not {target!r}") from None
        if containers is not None and any(not 0 <= c < self.store.containers for c in containers):
            raise AdminError("bad_argument", "no such container")
        if self.store.compaction_status().state == "running":
            raise AdminError("busy", "a compaction is already running", 409)
        keep = self.owned() if self.owned is not None else None
        task = asyncio.ensure_future(self.store.compact(containers, keep=keep))
        if args.get("wait"):
            return msgspec.to_builtins(await task)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return {**msgspec.to_builtins(self.store.compaction_status()), "started": True,
                "containers": "all" if containers is None else containers}

    async def compact_status(self, args: dict[str, Any]) -> Any:
        return msgspec.to_builtins(self.store.compaction_status())

    async def diagnose_start(self, args: dict[str, Any]) -> Any:
        report = await self.store.scrub_report()
        # "count" (damaged needles) stays for scripts written against the first version of this answer
        return {"checked": report.checked, "damaged": [msgspec.to_builtins(d) for d in report.damaged],
                "damaged_count": len(report.damaged), "count": len(report.damaged)}

    async def drain(self) -> None:
        """Let running compactions finish (before the store closes)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
