"""The manager's side of a rebalance: ``rebalance``, ``rebalance-status``, ``rollback`` and the
loop that settles the rings once every node has moved its data.

``rebalance`` builds the new ring (:meth:`Cluster.rebalance`), pushes the pair to the nodes and
tells each node of the previous ring the throttle. The nodes move the data themselves
(:mod:`leofs.node.rebalance`); :meth:`RebalanceCommands.watch` polls their ``rebalance-progress``
and settles once all report done for the current pair of rings. All state that matters is durable
(the rings in the manager store, a checkpoint per node), so a restart of any process resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from leofs.internal.admin_http import AdminError, arg
from leofs.manager.cluster import Cluster
from leofs.ring import Ring

log = logging.getLogger("leofs.manager.rebalance")

PROGRESS_TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=2)
WATCH_INTERVAL = 1.0

CallNode = Callable[[str, str, dict[str, Any], aiohttp.ClientTimeout, str], Awaitable[Any]]


def copies_moved(old: Ring, new: Ring) -> float:
    """Exact fraction of the new ring's replica copies that a node gains (what the rebalance sends)."""
    if old.power != new.power:  # the partitions were split: compare at the finer grain
        shift = new.power - old.power
        olds = old.partition_lists()
        pairs = [(olds[p >> shift], lst) for p, lst in enumerate(new.partition_lists())]
    else:
        pairs = list(zip(old.partition_lists(), new.partition_lists(), strict=True))
    slots = sum(len(b) for _, b in pairs)
    gained = sum(len({m.name for m in b} - {m.name for m in a}) for a, b in pairs)
    return gained / slots if slots else 0.0


class RebalanceCommands:
    """The admin commands and the settling loop; :meth:`install` registers the commands."""

    def __init__(self, cluster: Cluster, push_view: Callable[[], Awaitable[list[dict[str, Any]]]],
                 call_node: CallNode) -> None:  # fmt: skip
        self.cluster = cluster
        self.push_view = push_view
        self.call_node = call_node
        self._settling = asyncio.Lock()

    def install(self, commands: dict[str, Any]) -> None:
        commands.update({"rebalance": self.rebalance, "rebalance-status": self.status, "rollback": self.rollback})

    async def rebalance(self, args: dict[str, Any]) -> Any:
        """Start a rebalance; ``rate`` (bytes/s per node) throttles the pushes."""
        rate = args.get("rate")
        if rate is not None and (not isinstance(rate, int) or rate <= 0):
            raise AdminError("bad_argument", "rate must be a positive number of bytes per second")
        pair = self.cluster.rebalance()
        pushed = await self.push_view()
        if rate is not None:
            await self._progress({"rate": rate})
        old, new = pair.previous, pair.current
        return {
            "ring_hash": new.hash,
            "previous_hash": old.hash,
            "joining": sorted(m.name for m in new.members if m.name not in old),
            "leaving": sorted(m.name for m in old.members if m.name not in new),
            "predicted_copies_moved": round(copies_moved(old, new), 4),
            "pushed": pushed,
        }

    async def rollback(self, args: dict[str, Any]) -> Any:
        node = self.cluster.rollback(arg(args, "node"))
        await self.push_view()
        return msgspec.to_builtins(node)

    # -- progress -------------------------------------------------------------------------------------
    async def _progress(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Every node of the previous ring's ``rebalance-progress`` (an error row for a node that
        does not answer)."""
        rings = self.cluster.rings
        if rings is None:
            return []
        members = self.cluster.members

        async def ask(name: str) -> dict[str, Any]:
            node = members.get(name)
            state = node.state if node is not None else "unknown"
            age = members.heartbeat_age(name)
            silent = state == "stop" or age is None or age > members.timeout
            if node is not None and silent and name not in rings.current:
                # a dead node that is leaving (a failed machine): the other old owners push its
                # keys in their second pass, so it does not hold the rebalance
                return {"node": name, "state": state, "done": True, "ring": ":".join(rings.hashes),
                        "skipped": "leaving and stopped: its keys come from the other old owners"}
            if node is None or silent:
                return {"node": name, "state": state, "done": False, "error": "not reachable"}
            try:
                answer = await self.call_node(node.address, "rebalance-progress", args, PROGRESS_TIMEOUT, name)
            except AdminError as err:
                return {"node": name, "state": state, "done": False, "error": str(err)}
            return {**answer, "state": state} if isinstance(answer, dict) else {"node": name, "done": False}

        return list(await asyncio.gather(*(ask(m.name) for m in rings.previous.members)))

    async def status(self, args: dict[str, Any]) -> Any:
        """Progress per node, totals and an estimate of the time left."""
        rings = self.cluster.rings
        if rings is None:
            raise AdminError("not_started", "the cluster is not started (leofs adm start)")
        current, previous = rings.hashes
        if not rings.rebalancing:
            return {"state": "idle", "ring_hash_current": current, "ring_hash_previous": previous, "nodes": []}
        nodes = await self._progress({})
        want = f"{current}:{previous}"
        etas = [n.get("eta") for n in nodes]
        return {
            "state": "rebalancing",
            "ring_hash_current": current,
            "ring_hash_previous": previous,
            "predicted_copies_moved": round(copies_moved(rings.previous, rings.current), 4),
            "nodes": nodes,
            "done": sum(1 for n in nodes if n.get("done") and n.get("ring") == want),
            "objects": sum(int(n.get("objects") or 0) for n in nodes),
            "bytes": sum(int(n.get("bytes") or 0) for n in nodes),
            "eta": None if any(e is None for e in etas) else max((float(e or 0) for e in etas), default=0.0),
        }

    # -- settling -------------------------------------------------------------------------------------
    async def check(self) -> bool:
        """Settle the rings if every node of the previous ring reports done for them; True if settled."""
        async with self._settling:
            rings = self.cluster.rings
            if rings is None or not rings.rebalancing:
                return False
            want = ":".join(rings.hashes)
            nodes = await self._progress({})
            if not nodes or not all(n.get("done") and n.get("ring") == want for n in nodes):
                return False
            if self.cluster.rings is not rings:
                return False
            self.cluster.settle()
        await self.push_view()
        return True

    async def watch(self) -> None:
        """Poll while a rebalance is in progress and settle it when done (runs for the manager's life)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                if self.cluster.rings is not None and self.cluster.rings.rebalancing:
                    await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the loop die: it is what ends rebalances
                log.exception("rebalance check failed")
