"""The embedded default: manager, one storage node and the gateway in one process (N=W=R=D=1).

``leofs server DIR`` lays out DIR as::

    DIR/manager.sqlite3     users, keys, buckets, endpoints
    DIR/storage/            the object store (containers + index)
    DIR/credentials.json    generated root keys (mode 0600), when not given in the environment
    DIR/cluster-secret      the admin secret (mode 0600): generated, or the LEOFS_CLUSTER_SECRET it ran with
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from leofs import metrics
from leofs.config import DEFAULT_CONTAINERS, DEFAULT_MANAGER_ADDRESS, DEFAULT_S3_ADDRESS, parse_address
from leofs.embedded_control import LocalControl
from leofs.fsmode import make_private_dir
from leofs.gateway import maintenance
from leofs.gateway.admin_listener import bucket_deleter
from leofs.gateway.app import Gateway, make_runner, tls_context
from leofs.gateway.backend import EmbeddedBackend
from leofs.gateway.cache import build_cache
from leofs.gateway.context import GatewayConfig
from leofs.gateway.rest import RestApi
from leofs.gateway.worker_control import parse_purge_args, purge_everywhere
from leofs.internal.admin_http import AdminError, Command
from leofs.lifecycle import reload_on_sighup, wait_for_shutdown_signal
from leofs.manager.admin import AdminAPI
from leofs.manager.bootstrap import ensure_root, load_secret, remember_secret, root_credentials, root_keys_lines
from leofs.manager.store import ManagerStore
from leofs.node.admin_commands import StorageAdmin
from leofs.process_pool import check_port_free, make_runtime_dir
from leofs.storage import metrics as storage_metrics
from leofs.storage.store import ObjectStore
from leofs.storage.write_link import WriteService
from leofs.workers import WorkerPool, WorkerSpec

log = logging.getLogger("leofs.server")

#: the name of the embedded server's one storage node (and gateway) in `leofs adm`
NODE_NAME = "embedded"
#: `leofs adm` commands that only a cluster's manager runs (answered with a clear refusal here)
CLUSTER_ONLY = ("start", "suspend", "resume", "detach", "remove-gateway", "update-consistency-level", "whereis",
                "mq-stats")


@dataclass
class ServerOptions:
    data_dir: Path
    address: tuple[str, int] = parse_address(DEFAULT_S3_ADDRESS)
    admin_address: tuple[str, int] = parse_address(DEFAULT_MANAGER_ADDRESS)
    protocol: str = "s3"  # what `address` serves: "s3" or "rest" (leofs.config.listeners)
    rest_address: tuple[str, int] | None = None  # a second listener, serving the REST API
    tls_cert: Path | None = None
    tls_key: Path | None = None
    containers: int = DEFAULT_CONTAINERS
    sync: bool = True
    workers: int = 1  # processes answering S3 on the shared port (see leofs.workers)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)


def default_reserve(path: Path) -> int:
    """Free space kept back from writes (so deletes and compaction can still run): 64 MiB, or 2% of
    a small disk."""
    st = os.statvfs(path)
    return min(64 * 1024 * 1024, max(1024 * 1024, st.f_blocks * st.f_frsize // 50))


class EmbeddedServer:
    """All three roles over one data directory."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.runners: list[web.AppRunner] = []
        self.store: ObjectStore | None = None
        self.manager: ManagerStore | None = None
        self.gateway: Gateway | None = None
        self._maintenance: asyncio.Future[None] | None = None
        self.storage_admin: StorageAdmin | None = None
        self._runtime: Path | None = None  # write-link socket and shared metrics (with workers)
        self._write_service: WriteService | None = None
        self._workers: WorkerPool | None = None

    async def start(self) -> dict[str, Any]:
        opts = self.options
        make_private_dir(opts.data_dir)
        if opts.workers > 1:
            self._runtime = make_runtime_dir("leofs-server")
            (self._runtime / "metrics").mkdir()
            metrics.enable_multiprocess(self._runtime / "metrics")
        self.manager = ManagerStore(opts.data_dir / "manager.sqlite3")
        access, secret, generated = root_credentials(opts.data_dir)
        ensure_root(self.manager, access, secret)
        self.store = await ObjectStore.open(
            opts.data_dir / "storage", containers=opts.containers, sync=opts.sync,
            verify_below=opts.gateway.verify_below, reserve_bytes=default_reserve(opts.data_dir),
        )
        storage_metrics.track(NODE_NAME, self.store)
        backend = EmbeddedBackend(self.store)
        control = LocalControl(self.manager, shared=opts.workers > 1)
        # the object cache is off by default here (reads are local); each process has its own
        cache = build_cache(opts.gateway, default_ram=0, slot="0")
        self.gateway = Gateway(backend, control, self._gateway_config(), cache=cache)
        admin_secret, generated_secret = load_secret(opts.data_dir)
        if not generated_secret:  # from the environment: keep it too, for `leofs adm --data DIR`
            remember_secret(opts.data_dir, admin_secret)
        # delete-bucket takes the gateway's fenced path, as S3 DeleteBucket does
        admin = AdminAPI(self.manager, admin_secret, remove_bucket=bucket_deleter(self.gateway), info=self._info)
        self._register_storage_commands(admin)
        admin.commands.update(maintenance.admin_commands(self.gateway))
        self._maintenance = asyncio.ensure_future(maintenance.run_periodically(self.gateway))
        ssl_ctx = tls_context(opts.tls_cert, opts.tls_key)
        shared = self._runtime is not None
        if shared:
            await asyncio.to_thread(check_port_free, *opts.address)
            if opts.rest_address is not None:
                await asyncio.to_thread(check_port_free, *opts.rest_address)
        if opts.rest_address is not None:  # first: once the main port answers, both do
            await self._serve(RestApi(self.gateway).make_app(), opts.rest_address, ssl_ctx, reuse_port=shared)
            self.gateway.limits.track(self.runners[-1].server)
        main = self.gateway.make_app() if opts.protocol == "s3" else RestApi(self.gateway).make_app()
        await self._serve(main, opts.address, ssl_ctx, reuse_port=shared)
        self.gateway.limits.track(self.runners[-1].server)
        await self._serve(admin.make_app(), opts.admin_address, None)
        if self._runtime is not None:
            await self._start_workers(self._runtime)
        return {"access_key": access, "secret_key": secret, "generated": generated, "tls": ssl_ctx is not None}

    async def _serve(self, app: web.Application, address: tuple[str, int], ssl_ctx: ssl.SSLContext | None,
                     reuse_port: bool = False) -> None:  # fmt: skip
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], ssl_context=ssl_ctx, backlog=1024,
                           reuse_port=reuse_port or None)  # fmt: skip
        await site.start()
        self.runners.append(runner)

    def _gateway_config(self) -> GatewayConfig:
        """Each process's gateway settings: the chunk bytes in flight are a budget of the server,
        shared out among its processes (memory stays as flat as with one)."""
        cfg = self.options.gateway
        share = max(2 * cfg.chunk_size, cfg.chunk_budget // self.options.workers)
        return msgspec.structs.replace(cfg, chunk_budget=share)

    async def _start_workers(self, runtime: Path) -> None:
        assert self.store is not None
        opts = self.options
        self._write_service = WriteService(self.store, runtime / "write.sock", metrics=metrics.live_text)
        await self._write_service.start()
        specs = [
            WorkerSpec(
                index=i, parent=os.getpid(), data_dir=str(opts.data_dir), host=opts.address[0],
                port=opts.address[1], protocol=opts.protocol,
                rest_host=opts.rest_address[0] if opts.rest_address else None,
                rest_port=opts.rest_address[1] if opts.rest_address else None,
                link=str(runtime / "write.sock"), metrics_dir=str(runtime / "metrics"),
                control=str(runtime / f"worker-{i}.sock"),
                tls_cert=str(opts.tls_cert) if opts.tls_cert else None,
                tls_key=str(opts.tls_key) if opts.tls_key else None, gateway=self._gateway_config(),
                headers_text=self.gateway.custom_headers.text if self.gateway is not None else "",
            )
            for i in range(1, opts.workers)
        ]  # fmt: skip
        self._workers = WorkerPool(specs)
        await self._workers.start()

    def reload(self) -> None:
        """SIGHUP: read the custom response headers again, here and in every worker process."""
        if self.gateway is None:
            return
        self.gateway.custom_headers.reload()
        if self._workers is not None:
            self._workers.reload(self.gateway.custom_headers.text)

    def _info(self) -> dict[str, Any]:
        return {
            "mode": "embedded",
            "workers": self.options.workers,
            "consistency": {"n": 1, "w": 1, "r": 1, "d": 1},
            "nodes": [
                {"name": NODE_NAME, "type": "storage", "state": "running",
                 "address": f"{self.options.address[0]}:{self.options.address[1]}"},
                {"name": NODE_NAME, "type": "gateway", "state": "running",
                 "address": f"{self.options.address[0]}:{self.options.address[1]}"},
            ],
        }

    def _register_storage_commands(self, admin: AdminAPI) -> None:
        assert self.store is not None
        self.storage_admin = StorageAdmin(self.store)

        async def status(args: dict[str, Any]) -> Any:
            return self._info()

        def on_the_node(command: Command) -> Command:
            async def run(args: dict[str, Any]) -> Any:
                node = args.get("node")
                if node is not None and node != NODE_NAME:
                    raise AdminError("not_found", f"no storage node {node!r}; the embedded server's storage node "
                                                  f"is {NODE_NAME!r}", 404)
                return await command(args)

            return run

        def cluster_only(name: str) -> Command:
            async def refuse(args: dict[str, Any]) -> Any:
                raise AdminError("cluster_only", f"{name} applies to a cluster; the embedded server has one storage "
                                                 f"node ({NODE_NAME!r}) and no RING", 409)

            return refuse

        node_commands = {name: on_the_node(c) for name, c in self.storage_admin.commands().items()}
        admin.commands.update({**{name: cluster_only(name) for name in CLUSTER_ONLY}, **node_commands,
                               "status": status, "purge-cache": self._purge_cache})

    async def _purge_cache(self, args: dict[str, Any]) -> Any:
        """``leofs adm purge-cache BUCKET/KEY``: drop the entry in every process's cache, answered
        as a cluster's manager does (one row per gateway; here the one gateway, all its processes)."""
        named = parse_purge_args(args)
        if named is None:
            raise AdminError("bad_argument", "purge-cache takes BUCKET/KEY")
        assert self.gateway is not None
        sockets = self._workers.control_sockets() if self._workers is not None else {}
        result = await purge_everywhere(self.gateway.cache, sockets, *named)
        address = f"{self.options.address[0]}:{self.options.address[1]}"
        if not result.pop("ok"):
            return [{"gateway": NODE_NAME, "address": address, "ok": False, "error": result["error"],
                     "result": result}]
        return [{"gateway": NODE_NAME, "address": address, "ok": True, "result": result}]

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self._workers is not None:  # first: their last requests still write through the link
            await self._workers.stop()
        if self._write_service is not None:
            await self._write_service.close()
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()
        if self.gateway is not None and self.gateway.background:
            await asyncio.gather(*self.gateway.background, return_exceptions=True)
        if self.storage_admin is not None:
            await self.storage_admin.drain()
        if self.store is not None:
            await self.store.close()
        if self.manager is not None:
            self.manager.close()
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)


def announcement(options: ServerOptions, info: dict[str, Any]) -> list[str]:
    """What ``leofs server`` prints once it serves: addresses, the node name, the keys, how to connect."""
    host, port = options.address
    scheme = "https" if info["tls"] else "http"
    url = f"{scheme}://{host}:{port}"
    served = f"S3 on {url}" if options.protocol == "s3" else f"REST API on {url}"
    if options.rest_address is not None:
        served += f", REST API on {scheme}://{options.rest_address[0]}:{options.rest_address[1]}"
    workers = options.workers - 1
    processes = "one process" if not workers else f"{options.workers} processes ({workers} gateway workers)"
    data = options.data_dir.resolve()
    admin_host, admin_port = options.admin_address
    default_admin = ServerOptions(options.data_dir).admin_address
    admin_flag = "" if options.admin_address == default_admin else f" --manager {admin_host}:{admin_port}"
    connect = f"aws --endpoint-url {url} s3 ls" if options.protocol == "s3" else f"curl {url}/BUCKET/KEY"
    return [
        f"leofs server: {served}, admin API on {options.admin_address[0]}:{options.admin_address[1]}, "
        f"{processes}",
        f"Data directory: {data} (its storage node is named 'embedded' in leofs adm)",
        *root_keys_lines(data, info["access_key"], info["secret_key"], info["generated"]),
        f"Connect: {connect}",
        f"Administer: leofs adm{admin_flag} --data {options.data_dir} status",
    ]


async def run_server(options: ServerOptions, announce: bool = True) -> None:
    """Run until SIGINT or SIGTERM."""
    server = EmbeddedServer(options)
    reload_on_sighup(server.reload)  # before the workers start: they get the signal from here
    info = await server.start()
    if announce:
        for line in announcement(options, info):
            print(line, flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await server.stop()
