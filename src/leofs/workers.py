"""Gateway worker processes of the embedded server: every core answers S3 requests.

One Python process runs one event loop on one core. ``leofs server`` therefore starts ``--workers``
processes that share the S3 port with ``SO_REUSEPORT`` (the kernel spreads new connections over
them). The first one (the *primary*) is the whole embedded server: manager, object store with its
group-commit writer, admin API, maintenance, and a gateway. Each other one (a *worker*) is only a
gateway: it reads users and buckets from the manager's SQLite database and objects from the store's
files directly, and sends its writes to the primary's writer over the write link
(:mod:`leofs.storage.write_link`), so the writer still batches every write into one fsync.

The primary restarts a worker that dies. A worker dies with the primary: the kernel sends it
SIGKILL when its parent exits (``PR_SET_PDEATHSIG``), and it also exits when the write link closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import time
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
from leofs.lifecycle import reload_on_sighup, wait_for_shutdown_signal
from leofs.manager.store import ManagerStore
from leofs.storage.shared import SharedStore
from leofs.storage.write_link import WriteLink

log = logging.getLogger("leofs.workers")

_PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0  # seconds before a dead worker is started again
STOP_TIMEOUT = 10.0  # seconds a worker gets to finish its requests on shutdown


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
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)


def check_port_free(host: str, port: int, wait: float = 3.0) -> None:
    """Fail (OSError EADDRINUSE) if anything listens on host:port. Workers bind with SO_REUSEPORT,
    which would let a second server share the port silently; a plain bind notices. Workers of a
    server just killed may take a moment to go, hence the short wait."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


class WorkerPool:
    """The primary's side: starts the workers, restarts any that dies, stops them all."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self.specs = specs
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for spec in self.specs:
            self._tasks.append(asyncio.create_task(self._keep_running(spec)))

    async def _spawn(self, spec: WorkerSpec) -> asyncio.subprocess.Process:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leofs", "--log-level", str(level), "server-worker",
            msgspec.json.encode(spec).decode(),
        )  # fmt: skip

    async def _keep_running(self, spec: WorkerSpec) -> None:
        while not self._stopping:
            proc = self.procs[spec.index] = await self._spawn(spec)
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("gateway worker %d exited with %s; starting it again", spec.index, code)
            await asyncio.sleep(RESTART_DELAY)

    def reload(self, headers_text: str) -> None:
        """SIGHUP every running worker (each reads the custom headers again); a worker started
        later begins with ``headers_text``, the primary's rules in force."""
        for spec in self.specs:
            spec.headers_text = headers_text
        self.signal(signal.SIGHUP)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every running worker."""
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM every worker (they finish their requests), SIGKILL what is left after a while."""
        self._stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waits = [asyncio.wait_for(p.wait(), STOP_TIMEOUT) for p in self.procs.values()]
        for result, proc in zip(await asyncio.gather(*waits, return_exceptions=True), self.procs.values(),
                                strict=True):  # fmt: skip
            if isinstance(result, BaseException) and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


async def run_worker(spec: WorkerSpec) -> None:
    """A worker's life: serve S3 on the shared port until SIGTERM or until the primary is gone."""
    _die_with_parent(spec.parent)
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
    gateway = Gateway(EmbeddedBackend(store), LocalControl(manager, shared=True), spec.gateway,
                      cache=build_cache(spec.gateway, default_ram=0, slot=str(spec.index)), custom_headers=headers)
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
        if gateway.background:
            await asyncio.gather(*gateway.background, return_exceptions=True)
        await store.close()
        manager.close()
