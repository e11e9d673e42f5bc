"""``leofs gateway``: the S3 gateway in front of a cluster of storage nodes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from leofs.gateway import maintenance
from leofs.gateway.admin_listener import DEFAULT_ADMIN_ADDRESS, make_admin_app
from leofs.gateway.app import Gateway, make_runner, tls_context
from leofs.gateway.cache import CLUSTER_RAM_DEFAULT, build_cache
from leofs.gateway.cluster_backend import ClusterBackend
from leofs.gateway.context import GatewayConfig
from leofs.gateway.health import cluster_probe
from leofs.gateway.remote_control import RemoteControl
from leofs.gateway.rest import RestApi
from leofs.internal.client import InternalClient
from leofs.internal.health import CallTimeouts
from leofs.internal.membership import ClusterState, ManagerLink
from leofs.internal.messages import RegisterRequest
from leofs.internal.rpc import RpcClient
from leofs.lifecycle import reload_on_sighup, wait_for_shutdown_signal

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
    #: object calls to storage nodes over the binary protocol (else HTTP, for A/B and debugging)
    binary: bool = True


class ClusterGateway:
    """A gateway process: S3 server, manager link, cached control plane, ring-routed backend."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.client = InternalClient(options.secret)
        self.state = ClusterState()
        host, port = options.address
        admin_host, admin_port = options.admin_address
        self.link = ManagerLink(self.client, options.manager,
                                RegisterRequest("gateway", options.name, f"{host}:{port}",
                                                admin_address=f"{admin_host}:{admin_port}"), self.state)
        self.control = RemoteControl(self.client, options.manager)
        self.rpc = RpcClient(options.secret) if options.binary else None
        self.backend = ClusterBackend(self.client, self.state, options.timeouts, rpc=self.rpc)
        cache = build_cache(options.config, default_ram=CLUSTER_RAM_DEFAULT)  # on by default here
        self.gateway = Gateway(self.backend, self.control, options.config, cache=cache,
                               health=cluster_probe(self.client, self.state))
        self.runner: web.AppRunner | None = None
        self.rest_runner: web.AppRunner | None = None
        self.admin_runner: web.AppRunner | None = None
        self._maintenance: asyncio.Future[None] | None = None

    async def start(self, *, wait_for_manager: float = 30.0) -> None:
        self.admin_runner = web.AppRunner(make_admin_app(self.gateway, self.options.secret), access_log=None,
                                          handle_signals=False)
        await self.admin_runner.setup()
        await web.TCPSite(self.admin_runner, *self.options.admin_address).start()
        self.link.start()
        self.control.start()
        try:  # serve as soon as the first state arrived (or serve empty and catch up)
            await asyncio.wait_for(self.control.loaded.wait(), wait_for_manager)
        except TimeoutError:
            log.warning("no answer from the manager at %s yet; serving and retrying", self.options.manager)
        ssl_ctx = tls_context(self.options.tls_cert, self.options.tls_key)
        if self.options.rest_address is not None:  # first: once the main port answers, both do
            self.rest_runner = make_runner(RestApi(self.gateway).make_app())
            await self.rest_runner.setup()
            self.gateway.limits.track(self.rest_runner.server)
            await web.TCPSite(self.rest_runner, *self.options.rest_address, ssl_context=ssl_ctx, backlog=1024).start()
        app = self.gateway.make_app() if self.options.protocol == "s3" else RestApi(self.gateway).make_app()
        self.runner = make_runner(app)
        await self.runner.setup()
        self.gateway.limits.track(self.runner.server)
        host, port = self.options.address
        await web.TCPSite(self.runner, host, port, ssl_context=ssl_ctx, backlog=1024).start()
        # orphaned chunks and abandoned uploads are collected by every gateway (deletes are idempotent)
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
        if self.gateway.background:
            await asyncio.gather(*self.gateway.background, return_exceptions=True)
        await self.client.close()
        if self.rpc is not None:
            await self.rpc.close()


async def run_gateway(options: GatewayOptions) -> None:
    """Run a gateway until SIGINT or SIGTERM."""
    node = ClusterGateway(options)
    reload_on_sighup(node.gateway.custom_headers.reload)
    await node.start()
    host, port = options.address
    scheme = "https" if options.tls_cert else "http"
    admin_host, admin_port = options.admin_address
    served = f"{'S3' if options.protocol == 's3' else 'REST API'} on {scheme}://{host}:{port}"
    if options.rest_address is not None:
        served += f", REST API on {scheme}://{options.rest_address[0]}:{options.rest_address[1]}"
    print(f"leofs gateway {options.name}: {served}, admin on {admin_host}:{admin_port}, "
          f"manager {options.manager}", flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await node.stop()
