"""Gateway worker processes of the embedded server: every core answers S3 requests.

One Python process runs one event loop on one core. ``leofs server`` therefore starts ``--workers``
processes that share the S3 port with ``SO_REUSEPORT`` (the kernel spreads new connections over
them). The first one (the *primary*) is the whole embedded server: manager, object store with its
group-commit writer, admin API, maintenance, and a gateway. Each other one (a *worker*) is only a
gateway: it reads users and buckets from the manager's SQLite database and objects from the store's
files directly, and sends its writes to the primary's writer over the write link
(:mod:`leofs.storage.write_link`), so the writer still batches every write into one fsync.

The primary restarts a worker that dies (:mod:`leofs.process_pool`). A worker dies with the
primary: the kernel sends it SIGKILL when its parent exits (``PR_SET_PDEATHSIG``), and it also
exits when the write link closes. Each worker's cache answers the primary's purge-cache on its
control socket (:mod:`leofs.gateway.worker_control`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import msgspec
from aiohttp import web

from leofs import metrics
from leofs.embedded_control import LocalControl
from leofs.fsmode import private_umask
from leofs.gateway.app import Gateway, make_runner, tls_context
from leofs.gateway.backend import EmbeddedBackend
from leofs.gateway.cache import build_cache
from leofs.gateway.context import GatewayConfig
from leofs.gateway.custom_headers import CustomHeaders
from leofs.gateway.rest import RestApi
from leofs.gateway.worker_control import serve_control
from leofs.lifecycle import reload_on_sighup, wait_for_shutdown_signal
from leofs.manager.store import ManagerStore
from leofs.process_pool import ProcessPool, die_with_parent
from leofs.storage.shared import SharedStore
from leofs.storage.write_link import WriteLink

log = logging.getLogger("leofs.workers")


class WorkerSpec(msgspec.Struct, kw_only=True):
    """Everything a worker needs, passed on its command line as JSON."""

    index: int
    parent: int
    data_dir: str
    host: str
    port: int
    link: str
    protocol: str = "s3"  # what host:port serves ("s3" or "rest")
    rest_host: str | None = None  # a second listener, serving the REST API
    rest_port: int | None = None
    #: the custom-header file's content the primary serves (a worker reads the file only on SIGHUP)
    headers_text: str = ""
    metrics_dir: str
    tls_cert: str | None = None
    tls_key: str | None = None
    control: str = ""  # its control socket (leofs.gateway.worker_control): purge-cache
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)


class WorkerPool(ProcessPool[WorkerSpec]):
    """The primary's side: the embedded server's workers (``leofs server-worker``)."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        super().__init__("server-worker", specs)

    def reload(self, headers_text: str) -> None:
        """SIGHUP every running worker (each reads the custom headers again); a worker started
        later begins with ``headers_text``, the primary's rules in force."""
        for spec in self.specs:
            spec.headers_text = headers_text
        self.signal(signal.SIGHUP)

    def control_sockets(self) -> dict[int, Path]:
        """Each worker's control socket (leofs.gateway.worker_control), by index."""
        return {spec.index: Path(spec.control) for spec in self.specs if spec.control}


async def run_worker(spec: WorkerSpec) -> None:
    """A worker's life: serve S3 on the shared port until SIGTERM or until the primary is gone."""
    die_with_parent(spec.parent)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload sent while starting must not kill it (see below)
    private_umask()
    metrics.enable_multiprocess(Path(spec.metrics_dir))
    data_dir = Path(spec.data_dir)
    manager = ManagerStore(data_dir / "manager.sqlite3")
    lost = asyncio.Event()
    link = await WriteLink.connect(Path(spec.link), on_lost=lost.set)
    metrics.remote_source = link.query_metrics  # storage metrics live in the primary
    store = SharedStore(data_dir / "storage", link, verify_below=spec.gateway.verify_below)
    headers = CustomHeaders(spec.gateway.headers_config_file, text=spec.headers_text)
    cache = build_cache(spec.gateway, default_ram=0, slot=str(spec.index))
    gateway = Gateway(EmbeddedBackend(store), LocalControl(manager, shared=True), spec.gateway, cache=cache,
                      custom_headers=headers)
    # before the S3 port: a worker the primary cannot reach must be one that serves nothing yet
    control = await serve_control(Path(spec.control), cache) if spec.control else None
    reload_on_sighup(gateway.custom_headers.reload)
    ssl_ctx = tls_context(spec.tls_cert, spec.tls_key)
    listeners = [(gateway.make_app() if spec.protocol == "s3" else RestApi(gateway).make_app(), spec.host, spec.port)]
    if spec.rest_host is not None and spec.rest_port is not None:
        listeners.append((RestApi(gateway).make_app(), spec.rest_host, spec.rest_port))
    runners: list[web.AppRunner] = []
    for app, host, port in listeners:
        runner = make_runner(app)
        await runner.setup()
        runners.append(runner)
        gateway.limits.track(runner.server)
        await web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_port=True).start()
    shutdown = asyncio.ensure_future(wait_for_shutdown_signal())
    link_lost = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait([shutdown, link_lost], return_when=asyncio.FIRST_COMPLETED)
        if link_lost.done():
            log.error("gateway worker %d: the primary process is gone; exiting", spec.index)
            os._exit(1)
    finally:
        shutdown.cancel()
        link_lost.cancel()
        for runner in runners:
            await runner.cleanup()
        if control is not None:
            control.close()
        if gateway.background:
            await asyncio.gather(*gateway.background, return_exceptions=True)
        await store.close()
        manager.close()
