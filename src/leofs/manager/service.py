"""``leofs manager``: members, the RING, users/keys/buckets/endpoints, the admin and internal APIs.

DATA holds ``manager.sqlite3`` (everything the manager knows), ``cluster-secret`` (when the secret is
neither given nor in LEOFS_CLUSTER_SECRET) and ``credentials.json`` (generated root keys, when
LEOFS_ROOT_ACCESS_KEY / LEOFS_ROOT_SECRET_KEY are unset), both mode 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import Metric

from leofs import metrics
from leofs.config import DEFAULT_MANAGER_ADDRESS, parse_address
from leofs.fsmode import make_private_dir
from leofs.internal.admin_http import secret_middleware
from leofs.internal.client import InternalClient
from leofs.internal.messages import Consistency
from leofs.internal.tls import InternalTls
from leofs.lifecycle import wait_for_shutdown_signal
from leofs.manager.admin import AdminAPI
from leofs.manager.bootstrap import ensure_root, load_secret, remember_secret, root_credentials, root_keys_lines
from leofs.manager.cluster import Cluster
from leofs.manager.cluster_admin import ClusterCommands
from leofs.manager.members import HEARTBEAT_TIMEOUT, Members
from leofs.manager.rebalance import RebalanceCommands
from leofs.manager.state_api import StateAPI, VersionWatch
from leofs.manager.store import ManagerStore

log = logging.getLogger("leofs.manager")


@dataclass
class ManagerOptions:
    """Options of ``leofs manager`` (N/W/R/D apply on first start; see :class:`Cluster`)."""

    data_dir: Path
    address: tuple[str, int] = parse_address(DEFAULT_MANAGER_ADDRESS)
    n: int = 1
    w: int = 1
    r: int = 1
    d: int = 1
    secret: str | None = None
    rack_aware_replicas: int | None = None
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    check_interval: float = 0.5
    #: TLS on the admin and internal API and on calls to members (None: plaintext)
    tls: InternalTls | None = None


_tracked: list[weakref.ref[Members]] = []


def _member_metrics() -> Iterable[Metric]:
    counts: dict[tuple[str, ...], float] = {}
    for ref in _tracked:
        members = ref()
        for node in members.nodes() if members is not None else []:
            counts[(node.type, node.state)] = counts.get((node.type, node.state), 0) + 1
    yield metrics.gauge("leofs_members", "Cluster members by type and state", counts, ["type", "state"])


metrics.register(_member_metrics)


class Manager:
    """One manager process: the store, the member table, the HTTP server and the timeout checker."""

    def __init__(self, options: ManagerOptions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self.runner: web.AppRunner | None = None
        self.store: ManagerStore | None = None
        self.client: InternalClient | None = None
        self.watch: VersionWatch | None = None
        self.state_api: StateAPI | None = None
        self._checker: asyncio.Task[None] | None = None
        self._rebalancer: asyncio.Task[None] | None = None
        self.secret = ""
        self.secret_generated = False
        self.root: tuple[str, str, bool] = ("", "", False)
        self.port = options.address[1]

    def build(self) -> web.Application:
        """Open the state and build the aiohttp application (no listening yet)."""
        opts = self.options
        make_private_dir(opts.data_dir)
        self.secret, self.secret_generated = load_secret(opts.data_dir, opts.secret)
        if not self.secret_generated:  # given: keep it too, for `leofs adm --data DIR`
            remember_secret(opts.data_dir, self.secret)
        self.store = store = ManagerStore(opts.data_dir / "manager.sqlite3")
        self.root = root_credentials(opts.data_dir)
        ensure_root(store, self.root[0], self.root[1])
        members = Members(store, clock=self.clock, timeout=opts.heartbeat_timeout)
        self.cluster = Cluster(store, members, Consistency(opts.n, opts.w, opts.r, opts.d), opts.rack_aware_replicas)
        _tracked.append(weakref.ref(members))
        self.client = InternalClient(self.secret, tls=opts.tls.client_context() if opts.tls is not None else None)
        self.commands = ClusterCommands(self.cluster, self.client)
        admin = AdminAPI(store, self.secret, remove_bucket=self.commands.remove_bucket, info=self._info)
        self.commands.install(admin)
        self.rebalance = RebalanceCommands(self.cluster, self.commands.push_view, self.commands.call_node)
        self.rebalance.install(admin.commands)
        self.watch = VersionWatch(store, asyncio.get_running_loop())
        app = web.Application(middlewares=[secret_middleware(admin.guard)], client_max_size=16 * 1024 * 1024)
        app.router.add_post("/adm/{command}", admin.handle)
        self.state_api = StateAPI(self.cluster, self.watch)
        self.state_api.add_routes(app)
        app.router.add_get("/metrics", metrics.handler)
        return app

    def _info(self) -> dict[str, Any]:
        return self.commands.status_dict()

    async def start(self) -> None:
        """Listen on the options' address and start the heartbeat checker."""
        app = self.build()
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        host, port = self.options.address
        tls = self.options.tls
        site = web.TCPSite(self.runner, host, port, backlog=1024,
                           ssl_context=tls.server_context() if tls is not None else None)  # fmt: skip
        await site.start()
        if self.runner.addresses:  # the real port when asked for port 0
            self.port = int(self.runner.addresses[0][1])
        self._checker = asyncio.ensure_future(self._check_loop())
        self._rebalancer = asyncio.ensure_future(self.rebalance.watch())

    async def _check_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.check_interval)
            try:
                for name in self.cluster.members.check_timeouts():
                    log.warning("%s missed heartbeats for %.0f s: marked stop", name, self.options.heartbeat_timeout)
                self.cluster.members.promote_recovered()  # the nodes a recovering one waits for may have changed
            except Exception:  # never let the checker die: it is what notices dead nodes
                log.exception("heartbeat check failed")

    async def stop(self) -> None:
        """Stop serving and close everything (long-polls are released first)."""
        for task in (self._checker, self._rebalancer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.watch is not None:
            self.watch.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.client is not None:
            await self.client.close()
        if self.store is not None:
            self.store.close()


async def run_manager(options: ManagerOptions, announce: bool = True) -> None:
    """Run the manager until SIGINT or SIGTERM."""
    manager = Manager(options)
    await manager.start()
    if announce:
        host = options.address[0]
        levels = manager.cluster.levels
        print(f"leofs manager: admin and internal API on {host}:{manager.port}, data directory {options.data_dir}, "
              f"N={levels.n} W={levels.w} R={levels.r} D={levels.d}, "
              f"cluster {'started' if manager.cluster.started else 'not started (leofs adm start)'}", flush=True)
        secret_path = options.data_dir / "cluster-secret"
        if manager.secret_generated:
            print(f"Cluster secret generated and saved in {secret_path} (mode 0600); paste this line to use it:",
                  flush=True)
            print(f"export LEOFS_CLUSTER_SECRET={manager.secret}", flush=True)
        else:
            print(f"Cluster secret: kept in {secret_path} (leofs adm --data {options.data_dir} reads it)", flush=True)
        for line in root_keys_lines(options.data_dir, *manager.root):
            print(line, flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await manager.stop()
