"""A storage node process: ``leofs storage --name NAME --data DIR --manager H:P --address H:P``.

The node opens the object store in DATA, serves the internal API (:mod:`leofs.node.node_api`)
on its address, registers with the manager (retrying until it answers, serving local data
meanwhile), heartbeats, and holds the ring from the manager's ClusterView. It coordinates quorum
writes and reads (:mod:`leofs.node.coordinator`) and replays its durable repair queue
(:mod:`leofs.node.repair_queue`) in the background.

Layout of DATA: the object store (``superblock``, ``index.sqlite3``, ``avs/``), plus
``repair.sqlite3`` (the repair queue), ``cluster-view.msgpack`` (the last ClusterView) and
``recovery-job.json`` (the checkpoint of a recover-node/-consistency/-damaged job).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from leofs.config import DEFAULT_CONTAINERS, DEFAULT_NODE_ADDRESS, DEFAULT_VNODES, parse_address
from leofs.fsmode import make_private_dir
from leofs.internal.admin_http import AdminError, Command
from leofs.internal.client import InternalClient
from leofs.internal.health import CallTimeouts
from leofs.internal.membership import RECOVERING, ManagerLink
from leofs.internal.messages import RegisterRequest
from leofs.internal.rpc import RpcClient
from leofs.internal.tls import InternalTls
from leofs.lifecycle import wait_for_shutdown_signal
from leofs.node.admin_commands import StorageAdmin
from leofs.node.coordinator import Coordinator
from leofs.node.listener import start_listener
from leofs.node.local_data import LocalDataServer
from leofs.node.membership import NodeCluster
from leofs.node.node_api import NodeAPI
from leofs.node.rebalance import Mover
from leofs.node.recovery_jobs import RecoveryJobs
from leofs.node.repair_queue import RepairQueue, Replayer
from leofs.node.rpc_api import RpcServer
from leofs.storage import metrics as storage_metrics
from leofs.storage.model import Entry
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.node.node")


@dataclass
class StorageNodeOptions:
    name: str
    data_dir: Path
    manager: str | None  # host:port; None runs without a manager (rings come by POST /int/ring)
    address: tuple[str, int] = parse_address(DEFAULT_NODE_ADDRESS)
    rack: str | None = None
    vnodes: int = DEFAULT_VNODES
    containers: int = DEFAULT_CONTAINERS
    sync: bool = True
    secret: str = ""
    #: calls to other nodes; a replica write that times out is queued for repair
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    #: host:port other processes reach this node at (registered with the manager), when not ``address``
    advertise: str | None = None
    repair_base: float = 0.5  # repair backoff: base * 2**(attempts-1), capped
    repair_cap: float = 60.0
    heartbeat: float = 1.0
    #: object calls to other nodes over the binary protocol (else HTTP, for A/B and debugging)
    binary: bool = True
    #: TLS on the internal port and on calls to other members (None: plaintext)
    tls: InternalTls | None = None


class StorageNode:
    """All parts of one storage node; ``await start()``, ``await stop()``."""

    def __init__(self, options: StorageNodeOptions) -> None:
        self.options = options
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.link: ManagerLink | None = None
        self.port = options.address[1]

    @property
    def address(self) -> str:
        """Where other processes reach this node: the advertised address, else the bound one."""
        return self.options.advertise or f"{self.options.address[0]}:{self.port}"

    async def start(self) -> None:
        opts = self.options
        if not opts.secret:
            raise ValueError("a storage node needs the cluster secret")
        make_private_dir(opts.data_dir)
        self.store = await ObjectStore.open(opts.data_dir, containers=opts.containers, sync=opts.sync)
        self.queue = RepairQueue(opts.data_dir / "repair.sqlite3")
        self.cluster = NodeCluster(opts.name, opts.data_dir / "cluster-view.msgpack")
        client_tls = opts.tls.client_context() if opts.tls is not None else None
        self.client = InternalClient(opts.secret, tls=client_tls)
        self.rpc = RpcClient(opts.secret, tls=client_tls) if opts.binary else None
        self.coordinator = Coordinator(opts.name, self.store, self.cluster, self.client, self.queue,
                                       timeouts=opts.timeouts, rpc=self.rpc,
                                       on_enqueue=lambda: self.replayer.wakeup.set())  # fmt: skip
        self.replayer = Replayer(self.queue, self.coordinator.transfer.push, self._repairable, base=opts.repair_base,
                                 cap=opts.repair_cap)  # fmt: skip
        self.storage_admin = StorageAdmin(self.store, owned=self._owned)
        self.mover = Mover(opts.name, self.store, self.cluster, self.coordinator, opts.data_dir / "rebalance.json")
        storage_metrics.track(opts.name, self.store, self.queue)
        self.recovery = RecoveryJobs(self.coordinator, opts.data_dir)
        self.admin_commands: dict[str, Command] = {**self.storage_admin.commands(), "mq-stats": self._mq_stats,
                                                   "rebalance-progress": self._rebalance_progress,
                                                   **self.recovery.commands()}  # fmt: skip
        api = NodeAPI(opts.name, opts.secret, self.store, self.coordinator, self.cluster, self.admin_commands,
                      on_view=self.replayer.wakeup.set)  # fmt: skip
        app = api.make_app()
        # the binary protocol shares the HTTP API's secret guard: failures of either count alike
        self.rpc_server = RpcServer(opts.secret, api.guard, self.store, self.coordinator)
        self.recovery.add_routes(app)
        # X-Leofs-Put carries up to 8 KiB of metadata as base64 msgpack: raise the header limits
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False,
                                     max_field_size=65536, max_line_size=65536)  # fmt: skip
        await self._runner.setup()
        # one address, HTTP and the binary protocol (leofs.node.listener)
        self._listener = await start_listener(self._runner, self.rpc_server, opts.address[0], opts.address[1],
                                              tls=opts.tls.server_context() if opts.tls is not None else None)
        if self.port == 0:  # tests bind port 0
            self.port = int(self._listener.sockets[0].getsockname()[1])
        # gateways on this host get container descriptors for large reads (leofs.node.local_data)
        self.local_data = LocalDataServer(opts.secret, api.guard, self.store)
        self.local_data.start(self.address)
        self.replayer.start()
        self.recovery.resume()
        self.mover.start()
        if opts.manager:
            request = RegisterRequest("storage", opts.name, self.address, rack=opts.rack, vnodes=opts.vnodes)
            self.link = ManagerLink(self.client, opts.manager, request, self.cluster, interval=opts.heartbeat,
                                    repair_queue=self.queue.depths_async)  # fmt: skip
            self.link.start()
        log.info("storage node %s serving on %s (data in %s)", opts.name, self.address, opts.data_dir)

    def _repairable(self, target: str) -> bool:
        """Replay towards nodes the manager reports running or recovering (without a view: try
        anyway) whose breaker is closed."""
        if not self.coordinator.health.usable(target):
            return False
        if not self.cluster.nodes:
            return self.cluster.address_of(target) is not None
        return self.cluster.state_of(target) in ("running", RECOVERING)

    def _owned(self) -> Callable[[Entry], bool] | None:
        """What compaction keeps once no rebalance is in progress: the entries whose redundancy list
        names this node (data left behind by a rebalance is dropped). None keeps everything: during
        a rebalance, without a ring, or on a node outside the ring (a detached node keeps its data)."""
        rings = self.cluster.rings
        if rings is None or rings.rebalancing or self.options.name not in rings.current:
            return None
        ring, name = rings.current, self.options.name
        return lambda e: any(m.name == name for m in ring.redundancy(e.key))

    async def _rebalance_progress(self, args: dict[str, Any]) -> Any:
        """This node's part of the rebalance; ``rate`` (bytes/s) changes its throttle first."""
        rate = args.get("rate")
        if rate is not None:
            try:
                value = int(rate)
            except (TypeError, ValueError):
                raise AdminError("bad_argument", f"rate must be bytes per second, not {rate!r}") from None
            if value <= 0:
                raise AdminError("bad_argument", "rate must be positive")
            self.mover.set_rate(value)
        return self.mover.progress()

    async def _mq_stats(self, args: dict[str, Any]) -> Any:
        stats = await asyncio.to_thread(self.queue.stats)
        health = self.coordinator.health.stats()
        idle = {"count": 0, "attempts": 0, "next_attempt_in": 0.0, "last_error": ""}
        for target in set(self.replayer.replayed) | set(self.replayer.failed):
            stats["targets"].setdefault(target, dict(idle))
        for target, row in stats["targets"].items():
            row["state"] = self.cluster.state_of(target)
            row["replayed"] = self.replayer.replayed[target]
            row["failed"] = self.replayer.failed[target]
            row["skipped"] = bool(health.get(target, {}).get("open", False))
        return {"node": self.options.name, "queues": [stats]}

    async def stop(self) -> None:
        """Stop serving, let in-flight replica writes queue their failures, close the store."""
        if self.link is not None:
            await self.link.stop()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.rpc_server.close()
            await self.rpc_server.drain()
            await self.local_data.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.replayer.stop()
        await self.mover.stop()
        await self.recovery.stop()
        await self.coordinator.health.close()
        if self.coordinator.background:
            await asyncio.gather(*self.coordinator.background, return_exceptions=True)
        await self.storage_admin.drain()
        await self.client.close()
        if self.rpc is not None:
            await self.rpc.close()
        self.queue.close()
        await self.store.close()


async def run_storage_node(options: StorageNodeOptions) -> None:
    """Run until SIGINT or SIGTERM."""
    node = StorageNode(options)
    await node.start()
    print(f"leofs storage {options.name}: internal API on {node.address}, data in {options.data_dir}", flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await node.stop()
