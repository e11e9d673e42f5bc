"""Admin commands of a cluster manager, added to the shared :class:`~leofs.manager.admin.AdminAPI`.

Cluster commands (status, start, suspend, resume, detach, update-consistency-level) act on the
manager's own state. whereis asks the nodes of a key's redundancy list; du, compact-*, diagnose-start
and mq-stats are forwarded to the named storage node; purge-cache goes to every running gateway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec

from leofs.accounts import Bucket
from leofs.internal.admin_http import AdminError, arg, int_arg
from leofs.internal.client import InternalClient
from leofs.internal.messages import MSGPACK, encoder
from leofs.manager.admin import AdminAPI
from leofs.manager.cluster import Cluster
from leofs.manager.members import GATEWAY, STORAGE
from leofs.manager.recovery import RecoveryCommands
from leofs.manager.whereis import Whereis

log = logging.getLogger("leofs.manager.cluster_admin")

#: commands a storage node runs itself; the manager only finds the node and passes the call on
FORWARDED = ("du", "compact-start", "compact-status", "diagnose-start", "mq-stats")
PUSH_TIMEOUT = aiohttp.ClientTimeout(total=5, sock_connect=2)
QUERY_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=2)
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=3600, sock_connect=2)  # compact-start --wait, diagnose-start


class ClusterCommands:
    """The cluster half of the admin API; :meth:`install` registers it on an :class:`AdminAPI`."""

    def __init__(self, cluster: Cluster, client: InternalClient) -> None:
        self.cluster = cluster
        self.members = cluster.members
        self.client = client

    def install(self, admin: AdminAPI) -> None:
        """Register the cluster commands (status replaces the generic one)."""
        admin.commands.update({
            "status": self.status,
            "start": self.start,
            "suspend": self.suspend,
            "resume": self.resume,
            "detach": self.detach,
            "update-consistency-level": self.update_consistency_level,
            "whereis": Whereis(self.cluster, self.client),
            "purge-cache": self.purge_cache,
            "remove-gateway": self.remove_gateway,
            "gc": self._on_a_gateway("gc"),
            "expire-uploads": self._on_a_gateway("expire-uploads"),
        })
        for name in FORWARDED:
            admin.commands[name] = self._forwarder(name)
        admin.commands.update(RecoveryCommands(self.cluster, self.client, self.call_node).commands())

    # -- status -------------------------------------------------------------------------------------
    def status_dict(self) -> dict[str, Any]:
        """Everything ``leofs adm status`` shows."""
        current, previous = self.cluster.hashes
        levels = self.cluster.levels
        rack_aware = self.cluster.rings.current.rack_aware_replicas if self.cluster.rings else None
        nodes: list[dict[str, Any]] = []
        for n in self.members.nodes():
            age = self.members.heartbeat_age(n.name)
            nodes.append({
                "name": n.name, "type": n.type, "state": n.state, "address": n.address, "rack": n.rack,
                "vnodes": n.vnodes, "ring_current": n.ring_hash_current, "ring_previous": n.ring_hash_previous,
                "heartbeat_age": None if age is None else round(age, 1), "updated": n.updated,
            })
            if n.state == "recovering":  # what it waits for: repair tasks per node (None: no report yet)
                nodes[-1]["repair_pending"] = self.members.repair_pending(n.name)
        return {
            "mode": "cluster",
            "cluster_state": "running" if self.cluster.started else "pending (run leofs adm start)",
            "consistency": {"n": levels.n, "w": levels.w, "r": levels.r, "d": levels.d,
                            "rack_aware_replicas": rack_aware},
            "ring_hash_current": current,
            "ring_hash_previous": previous,
            "members_version": self.members.version,
            "nodes": nodes,
        }

    async def status(self, args: dict[str, Any]) -> Any:
        return self.status_dict()

    # -- membership -----------------------------------------------------------------------------------
    async def start(self, args: dict[str, Any]) -> Any:
        ring = self.cluster.start()
        pushed = await self.push_view()
        return {"ring_hash": ring.hash, "nodes": [m.name for m in ring.members], "replicas": ring.replicas,
                "rack_aware_replicas": ring.rack_aware_replicas, "pushed": pushed}

    async def push_view(self) -> list[dict[str, Any]]:
        """POST the full view to every storage node (best effort: a node that misses it pulls later)."""
        body = encoder.encode(self.cluster.view())
        targets = [n for n in self.members.nodes(STORAGE) if n.state not in ("detached", "stop")]

        async def push(address: str) -> str | None:
            try:
                async with self.client.request("POST", address, "/int/ring", data=body,
                                               headers={"Content-Type": MSGPACK}, timeout=PUSH_TIMEOUT) as resp:
                    await resp.read()
                    return None if resp.status < 300 else f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return str(exc) or type(exc).__name__

        errors = await asyncio.gather(*(push(n.address) for n in targets))
        return [{"node": n.name, "ok": err is None, "error": err} for n, err in zip(targets, errors, strict=True)]

    async def suspend(self, args: dict[str, Any]) -> Any:
        return msgspec.to_builtins(self.cluster.suspend(arg(args, "node")))

    async def resume(self, args: dict[str, Any]) -> Any:
        return msgspec.to_builtins(self.cluster.resume(arg(args, "node")))

    async def detach(self, args: dict[str, Any]) -> Any:
        node = self.cluster.detach(arg(args, "node"))
        return {**msgspec.to_builtins(node),
                "note": "marked detached; its data moves and it leaves the ring at the next rebalance "
                        "(leofs adm rebalance; leofs adm rollback undoes the detach until then)"}

    async def remove_gateway(self, args: dict[str, Any]) -> Any:
        name = arg(args, "node")
        node = self.members.require(name, GATEWAY)
        if node.state != "stop":
            raise AdminError("bad_state", f"gateway {name!r} is {node.state}; only a stopped gateway can be removed")
        self.members.forget(name)
        return None

    async def update_consistency_level(self, args: dict[str, Any]) -> Any:
        levels = self.cluster.update_levels(int_arg(args, "w"), int_arg(args, "r"), int_arg(args, "d"))
        return msgspec.to_builtins(levels)

    # -- forwarding -----------------------------------------------------------------------------------
    def _forwarder(self, command: str) -> Any:
        async def forward(args: dict[str, Any]) -> Any:
            node = self.members.get(arg(args, "node"))
            if node is None or node.type != STORAGE:
                raise AdminError("not_found", f"no storage node {args['node']!r}; {self.members.known(STORAGE)}", 404)
            rest = {k: v for k, v in args.items() if k != "node"}
            return await self.call_node(node.address, command, rest, FORWARD_TIMEOUT, node.name)

        return forward

    async def call_node(self, address: str, command: str, args: dict[str, Any], timeout: aiohttp.ClientTimeout,
                         name: str, *, base: str = "/adm") -> Any:
        try:
            async with self.client.request("POST", address, f"{base}/{command}", data=msgspec.json.encode(args),
                                           headers={"Content-Type": "application/json"}, timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AdminError("unreachable", f"{name} at {address}: {exc or type(exc).__name__}", 502) from None
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise AdminError("bad_answer", f"{name} answered HTTP {status}: {raw[:200]!r}", 502) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error", "failed") if isinstance(answer, dict) else "failed"
            message = answer.get("message", f"HTTP {status}") if isinstance(answer, dict) else f"HTTP {status}"
            raise AdminError(str(error), f"{name}: {message}", status if status >= 400 else 502)
        return answer.get("result")

    def _on_a_gateway(self, command: str) -> Any:
        """A command that any one gateway runs for the whole cluster (it works through the ring)."""

        async def run(args: dict[str, Any]) -> Any:
            gateways = [g for g in self.members.nodes(GATEWAY, ("running",)) if g.admin_address]
            if not gateways:
                raise AdminError("unavailable", f"{command} needs a running gateway with an admin address", 503)
            gw = gateways[0]
            return await self.call_node(gw.admin_address, command, args, FORWARD_TIMEOUT, gw.name)

        return run

    async def purge_cache(self, args: dict[str, Any]) -> Any:
        path = arg(args, "path")
        bucket, _, key = path.partition("/")
        gateways = self.members.nodes(GATEWAY, ("running",))

        async def purge(address: str, name: str) -> dict[str, Any]:
            try:
                if not address:
                    raise AdminError("unavailable", f"{name} has not reported an admin address")
                # the gateway's admin listener (never its public S3 port)
                result = await self.call_node(address, "purge-cache", {"path": path, "bucket": bucket, "key": key},
                                               QUERY_TIMEOUT, name)
            except AdminError as err:
                return {"gateway": name, "address": address, "ok": False, "error": str(err)}
            return {"gateway": name, "address": address, "ok": True, "result": result}

        return await asyncio.gather(*(purge(g.admin_address, g.name) for g in gateways))

    # -- delete-bucket in a cluster -------------------------------------------------------------------
    async def remove_bucket(self, bucket: Bucket) -> None:
        """Delete ``bucket`` through a gateway's admin listener: S3 DeleteBucket's fenced path
        (``leofs.gateway.fence``), so that a write in flight on any gateway cannot survive it.
        Refused (503) while no running gateway has an admin address."""
        await self._on_a_gateway("delete-bucket")({"record": msgspec.to_builtins(bucket)})
