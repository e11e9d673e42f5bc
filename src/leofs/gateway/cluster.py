"""``leofs gateway``: the S3 gateway in front of a cluster of storage nodes.

One :class:`ClusterGateway` per process. With ``--workers N`` (``leofs.gateway_workers``) process 0,
the *primary*, owns the gateway's identity toward the manager (registration, heartbeats, the admin
listener, maintenance); processes 1..N-1 share its S3 port (``SO_REUSEPORT``) and follow the
manager's view read-only (:mod:`leofs.gateway.cluster_follower`), each with its own control plane
cache, backend and object cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from leofs.gateway import maintenance
from leofs.gateway.admin_listener import DEFAULT_ADMIN_ADDRESS, make_admin_app
from leofs.gateway.app import Gateway, make_runner, tls_context
from leofs.gateway.cache import CLUSTER_RAM_DEFAULT, build_cache
from leofs.gateway.cluster_backend import ClusterBackend
from leofs.gateway.cluster_follower import ClusterFollower
from leofs.gateway.context import GatewayConfig
from leofs.gateway.custom_headers import CustomHeaders
from leofs.gateway.health import cluster_probe
from leofs.gateway.local_data import LocalReads
from leofs.gateway.remote_control import RemoteControl
from leofs.gateway.rest import RestApi
from leofs.internal.client import InternalClient
from leofs.internal.health import CallTimeouts
from leofs.internal.membership import ClusterState, ManagerLink
from leofs.internal.messages import RegisterRequest
from leofs.internal.rpc import RpcClient
from leofs.internal.tls import InternalTls

log = logging.getLogger("leofs.gateway")


@dataclass
class GatewayOptions:
    manager: str
    address: tuple[str, int]
    name: str
    secret: str
    admin_address: tuple[str, int] = DEFAULT_ADMIN_ADDRESS
    protocol: str = "s3"  # what `address` serves: "s3" or "rest" (leofs.config.listeners)
    rest_address: tuple[str, int] | None = None  # a second listener, serving the REST API
    tls_cert: Path | None = None
    tls_key: Path | None = None
    config: GatewayConfig = field(default_factory=GatewayConfig)
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)
    workers: int = 1  # processes sharing the S3 port (leofs.gateway_workers)
    #: object calls to storage nodes over the binary protocol (else HTTP, for A/B and debugging)
    binary: bool = True
    #: TLS on the admin listener and on calls to the manager and storage nodes (None: plaintext)
    internal_tls: InternalTls | None = None


class ClusterGateway:
    """A gateway process: S3 server, manager link, cached control plane, ring-routed backend."""

    def __init__(self, options: GatewayOptions, *, index: int = 0, headers_text: str | None = None) -> None:
        """``index``: 0 for the primary, else a worker; ``headers_text``: the custom-header rules the
        primary serves (a worker reads the file only on SIGHUP)."""
        self.options = options
        self.index = index  # 0: the primary; 1..workers-1: a worker process
        tls = options.internal_tls
        client_tls = tls.client_context() if tls is not None else None
        self.client = InternalClient(options.secret, tls=client_tls)
        self.state = ClusterState()
        host, port = options.address
        admin_host, admin_port = options.admin_address
        self.link: ManagerLink | ClusterFollower
        if index == 0:
            self.link = ManagerLink(self.client, options.manager,
                                    RegisterRequest("gateway", options.name, f"{host}:{port}",
                                                    admin_address=f"{admin_host}:{admin_port}"), self.state)
        else:  # never registers: the gateway is one member, whatever its processes
            self.link = ClusterFollower(self.client, options.manager, self.state)
        self.control = RemoteControl(self.client, options.manager)
        self.rpc = RpcClient(options.secret, tls=client_tls) if options.binary else None
        self.backend = ClusterBackend(self.client, self.state, options.timeouts, rpc=self.rpc,
                                      local_reads=LocalReads(options.secret, options.timeouts))  # fmt: skip
        # on by default here; with workers, each process has its own disk-tier directory (DIR/<index>)
        slot = str(index) if options.workers > 1 else ""
        cache = build_cache(options.config, default_ram=CLUSTER_RAM_DEFAULT, slot=slot)
        self.gateway = Gateway(self.backend, self.control, options.config, cache=cache,
                               health=cluster_probe(self.client, self.state),
                               custom_headers=CustomHeaders(options.config.headers_config_file, text=headers_text))
        self.runner: web.AppRunner | None = None
        self.rest_runner: web.AppRunner | None = None
        self.admin_runner: web.AppRunner | None = None
        self._maintenance: asyncio.Future[None] | None = None
        #: the primary's workers' control sockets (purge-cache reaches them); set by leofs.gateway_workers
        self.worker_sockets: Callable[[], dict[int, Path]] = dict

    async def start(self, *, wait_for_manager: float = 30.0,
                    before_serving: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
        """Serve; ``before_serving`` runs just before the S3 (and REST) ports open."""
        if self.index == 0:
            admin = make_admin_app(self.gateway, self.options.secret, lambda: self.worker_sockets())
            self.admin_runner = web.AppRunner(admin, access_log=None, handle_signals=False)
            await self.admin_runner.setup()
            tls = self.options.internal_tls  # the manager calls it: an internal port
            await web.TCPSite(self.admin_runner, *self.options.admin_address,
                              ssl_context=tls.server_context() if tls is not None else None).start()
        elif isinstance(self.link, ClusterFollower):  # a worker: the routing view before the first request
            try:
                await asyncio.wait_for(self.link.poll(), wait_for_manager)
            except Exception as exc:
                log.warning("no cluster view from the manager at %s yet (%s); retrying", self.options.manager, exc)
        self.link.start()
        self.control.start()
        try:  # serve as soon as the first state arrived (or serve empty and catch up)
            await asyncio.wait_for(self.control.loaded.wait(), wait_for_manager)
        except TimeoutError:
            log.warning("no answer from the manager at %s yet; serving and retrying", self.options.manager)
        ssl_ctx = tls_context(self.options.tls_cert, self.options.tls_key)
        if before_serving is not None:
            await before_serving()
        reuse_port = self.options.workers > 1 or None
        if self.options.rest_address is not None:  # first: once the main port answers, both do
            self.rest_runner = make_runner(RestApi(self.gateway).make_app())
            await self.rest_runner.setup()
            self.gateway.limits.track(self.rest_runner.server)
            await web.TCPSite(self.rest_runner, *self.options.rest_address, ssl_context=ssl_ctx, backlog=1024,
                              reuse_port=reuse_port).start()
        app = self.gateway.make_app() if self.options.protocol == "s3" else RestApi(self.gateway).make_app()
        self.runner = make_runner(app)
        await self.runner.setup()
        self.gateway.limits.track(self.runner.server)
        host, port = self.options.address
        await web.TCPSite(self.runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_port=reuse_port).start()
        if self.index == 0:  # orphaned chunks and abandoned uploads: every gateway (once) collects them
            self._maintenance = asyncio.ensure_future(maintenance.run_periodically(self.gateway))

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.rest_runner is not None:
            await self.rest_runner.cleanup()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        await self.link.stop()
        await self.control.stop()
        await self.backend.health.close()
        self.backend.close_local()
        if self.gateway.background:
            await asyncio.gather(*self.gateway.background, return_exceptions=True)
        await self.client.close()
        if self.rpc is not None:
            await self.rpc.close()
