"""``leofs gateway --workers N``: a cluster gateway as N processes sharing its S3 (and REST) port.

The first process (the *primary*) is the gateway as the manager knows it: it registers and
heartbeats under the gateway's name, serves the admin listener (purge-cache, gc, expire-uploads,
delete-bucket) and runs maintenance. It starts N-1 workers (``leofs gateway-worker``, through
:class:`leofs.process_pool.ProcessPool`: restarted when they die, dying with the primary). A
worker is a :class:`~leofs.gateway.cluster.ClusterGateway` of its own (its own manager state
long-poll, routing view, backend, connections and object cache) that never registers; it follows
the manager's cluster view read-only (:mod:`leofs.gateway.cluster_follower`). The primary reaches
each worker's cache through its control socket (:mod:`leofs.gateway.worker_control`) so that
purge-cache drops the entry in every process. Request metrics are shared (prometheus_client's
multiprocess files); the cluster secret goes to the workers in their environment, never on a
command line.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import msgspec

from leofs import metrics
from leofs.fsmode import private_umask
from leofs.gateway.cluster import ClusterGateway, GatewayOptions
from leofs.gateway.context import GatewayConfig
from leofs.gateway.worker_control import serve_control
from leofs.internal.health import CallTimeouts
from leofs.internal.tls import InternalTls
from leofs.lifecycle import reload_on_sighup, wait_for_shutdown_signal
from leofs.process_pool import ProcessPool, check_port_free, die_with_parent, make_runtime_dir

SECRET_ENV = "LEOFS_CLUSTER_SECRET"


class GatewayWorkerSpec(msgspec.Struct, kw_only=True):
    """A worker's options, passed on its command line as JSON (the secret is not among them)."""

    index: int
    parent: int
    manager: str
    host: str
    port: int
    name: str
    admin_host: str
    admin_port: int
    protocol: str = "s3"
    rest_host: str | None = None
    rest_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    config: GatewayConfig = msgspec.field(default_factory=GatewayConfig)
    connect_timeout: float
    op_timeout: float
    body_timeout: float
    workers: int
    control: str  # its control socket (purge-cache)
    metrics_dir: str
    #: the custom-header file's content the primary serves (a worker reads the file only on SIGHUP)
    headers_text: str = ""
    binary: bool = True  # object calls to storage nodes over the binary protocol (internal_protocol)
    #: internal TLS files (cert, key, CA), checked by the primary already
    internal_tls: tuple[str, str, str] | None = None

    def options(self, secret: str) -> GatewayOptions:
        return GatewayOptions(
            manager=self.manager, address=(self.host, self.port), name=self.name, secret=secret,
            admin_address=(self.admin_host, self.admin_port), protocol=self.protocol,
            rest_address=(self.rest_host, self.rest_port) if self.rest_host and self.rest_port else None,
            tls_cert=Path(self.tls_cert) if self.tls_cert else None,
            tls_key=Path(self.tls_key) if self.tls_key else None, config=self.config,
            timeouts=CallTimeouts(self.connect_timeout, self.op_timeout, self.body_timeout), workers=self.workers,
            binary=self.binary,
            internal_tls=InternalTls.from_options(*self.internal_tls) if self.internal_tls else None,
        )  # fmt: skip


def worker_specs(options: GatewayOptions, runtime: Path, headers_text: str) -> list[GatewayWorkerSpec]:
    """The specs of workers 1..N-1 of the gateway ``options`` describes."""
    t = options.timeouts
    return [
        GatewayWorkerSpec(
            index=i, parent=os.getpid(), manager=options.manager, host=options.address[0], port=options.address[1],
            name=options.name, admin_host=options.admin_address[0], admin_port=options.admin_address[1],
            protocol=options.protocol,
            rest_host=options.rest_address[0] if options.rest_address else None,
            rest_port=options.rest_address[1] if options.rest_address else None,
            tls_cert=str(options.tls_cert) if options.tls_cert else None,
            tls_key=str(options.tls_key) if options.tls_key else None, config=options.config,
            connect_timeout=t.connect, op_timeout=t.op, body_timeout=t.body, workers=options.workers,
            control=str(runtime / f"worker-{i}.sock"), metrics_dir=str(runtime / "metrics"), headers_text=headers_text,
            binary=options.binary, internal_tls=_tls_files(options.internal_tls),
        )
        for i in range(1, options.workers)
    ]  # fmt: skip


def _tls_files(tls: InternalTls | None) -> tuple[str, str, str] | None:
    return (str(tls.cert), str(tls.key), str(tls.ca)) if tls is not None else None


class GatewayPool(ProcessPool[GatewayWorkerSpec]):
    """The primary's side: the cluster gateway's workers (``leofs gateway-worker``)."""

    def __init__(self, specs: list[GatewayWorkerSpec], secret: str) -> None:
        super().__init__("gateway-worker", specs, env={SECRET_ENV: secret})

    def reload(self, headers_text: str) -> None:
        """SIGHUP every running worker; one started later begins with ``headers_text``."""
        for spec in self.specs:
            spec.headers_text = headers_text
        self.signal(signal.SIGHUP)

    def control_sockets(self) -> dict[int, Path]:
        return {spec.index: Path(spec.control) for spec in self.specs}


async def run_gateway(options: GatewayOptions) -> None:
    """Run a gateway (its primary process, and its workers with ``options.workers`` > 1) until
    SIGINT or SIGTERM."""
    runtime: Path | None = None
    pool: GatewayPool | None = None
    if options.workers > 1:
        private_umask()
        runtime = make_runtime_dir("leofs-gateway")
        (runtime / "metrics").mkdir()
        metrics.enable_multiprocess(runtime / "metrics")
        # SO_REUSEPORT would let a second gateway share the port silently: a plain bind notices
        await asyncio.to_thread(check_port_free, *options.address)
        if options.rest_address is not None:
            await asyncio.to_thread(check_port_free, *options.rest_address)
    node = ClusterGateway(options)

    def reload() -> None:
        node.gateway.custom_headers.reload()
        if pool is not None:
            pool.reload(node.gateway.custom_headers.text)

    reload_on_sighup(reload)  # before the workers start: they get the signal from here
    try:
        await node.start()
        if runtime is not None:
            pool = GatewayPool(worker_specs(options, runtime, node.gateway.custom_headers.text), options.secret)
            node.worker_sockets = pool.control_sockets
            await pool.start()
        host, port = options.address
        scheme = "https" if options.tls_cert else "http"
        admin_host, admin_port = options.admin_address
        served = f"{'S3' if options.protocol == 's3' else 'REST API'} on {scheme}://{host}:{port}"
        if options.rest_address is not None:
            served += f", REST API on {scheme}://{options.rest_address[0]}:{options.rest_address[1]}"
        processes = f", {options.workers} processes" if options.workers > 1 else ""
        print(f"leofs gateway {options.name}: {served}, admin on {admin_host}:{admin_port}, "
              f"manager {options.manager}{processes}", flush=True)  # fmt: skip
        await wait_for_shutdown_signal()
    finally:
        if pool is not None:  # first: they finish their requests
            await pool.stop()
        await node.stop()
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)


async def run_gateway_worker(spec: GatewayWorkerSpec) -> None:
    """A worker's life: serve on the shared port until SIGTERM (or SIGKILL with the primary)."""
    die_with_parent(spec.parent)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload sent while starting must not kill it
    private_umask()
    metrics.enable_multiprocess(Path(spec.metrics_dir))
    secret = os.environ.get(SECRET_ENV, "")
    node = ClusterGateway(spec.options(secret), index=spec.index, headers_text=spec.headers_text)
    control: asyncio.AbstractServer | None = None

    async def open_control() -> None:  # before the S3 port: a worker not reachable serves nothing yet
        nonlocal control
        control = await serve_control(Path(spec.control), node.gateway.cache)

    try:
        await node.start(before_serving=open_control)
        reload_on_sighup(node.gateway.custom_headers.reload)
        await wait_for_shutdown_signal()
    finally:
        if control is not None:
            control.close()
        await node.stop()
