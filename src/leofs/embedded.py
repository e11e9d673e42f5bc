"""The embedded default: manager, one storage node and the gateway in one process (N=W=R=D=1).

``leofs server DIR`` lays out DIR as::

    DIR/manager.sqlite3     users, keys, buckets, endpoints
    DIR/storage/            the object store (containers + index)
    DIR/credentials.json    generated root keys (mode 0600), when not given in the environment
    DIR/cluster-secret      the admin secret (mode 0600), when LEOFS_CLUSTER_SECRET is unset
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from leofs.gateway import maintenance
from leofs.gateway.app import Gateway, make_runner
from leofs.gateway.backend import EmbeddedBackend
from leofs.gateway.context import GatewayConfig
from leofs.gateway.control import LocalControl
from leofs.gateway.records import NS_OBJECT, NS_UPLOAD
from leofs.lifecycle import wait_for_shutdown_signal
from leofs.manager.admin import AdminAPI
from leofs.manager.bootstrap import cluster_secret, ensure_root, root_credentials
from leofs.manager.store import ManagerStore
from leofs.storage import metrics as storage_metrics
from leofs.storage.admin_commands import StorageAdmin
from leofs.storage.store import ObjectStore

log = logging.getLogger("leofs.server")


@dataclass
class ServerOptions:
    data_dir: Path
    address: tuple[str, int] = ("127.0.0.1", 8080)
    admin_address: tuple[str, int] = ("127.0.0.1", 10010)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    containers: int = 8
    sync: bool = True
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

    async def start(self) -> dict[str, Any]:
        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        self.manager = ManagerStore(opts.data_dir / "manager.sqlite3")
        access, secret, generated = root_credentials(opts.data_dir)
        ensure_root(self.manager, access, secret)
        self.store = await ObjectStore.open(
            opts.data_dir / "storage", containers=opts.containers, sync=opts.sync,
            verify_below=opts.gateway.verify_below, reserve_bytes=default_reserve(opts.data_dir),
        )
        storage_metrics.track("embedded", self.store)
        backend = EmbeddedBackend(self.store)
        self.gateway = Gateway(backend, LocalControl(self.manager), opts.gateway)
        admin = AdminAPI(self.manager, cluster_secret(opts.data_dir), info=self._info)
        self._register_storage_commands(admin)
        admin.commands.update(maintenance.admin_commands(self.gateway))
        self._maintenance = asyncio.ensure_future(maintenance.run_periodically(self.gateway))
        ssl_ctx = None
        if opts.tls_cert and opts.tls_key:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(str(opts.tls_cert), str(opts.tls_key))
        await self._serve(self.gateway.make_app(), opts.address, ssl_ctx)
        await self._serve(admin.make_app(), opts.admin_address, None)
        return {"access_key": access, "secret_key": secret, "generated": generated, "tls": ssl_ctx is not None}

    async def _serve(self, app: web.Application, address: tuple[str, int], ssl_ctx: ssl.SSLContext | None) -> None:
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], ssl_context=ssl_ctx, backlog=1024)
        await site.start()
        self.runners.append(runner)

    def _info(self) -> dict[str, Any]:
        return {
            "mode": "embedded",
            "consistency": {"n": 1, "w": 1, "r": 1, "d": 1},
            "nodes": [
                {"name": "embedded", "type": "storage", "state": "running",
                 "address": f"{self.options.address[0]}:{self.options.address[1]}"},
                {"name": "embedded", "type": "gateway", "state": "running",
                 "address": f"{self.options.address[0]}:{self.options.address[1]}"},
            ],
            "bucket_is_empty": self._bucket_is_empty,
        }

    async def _bucket_is_empty(self, bucket: str) -> bool:
        assert self.store is not None
        prefix = f"{bucket}/".encode()
        return not self.store.scan(NS_OBJECT, prefix, limit=1) and not self.store.scan(NS_UPLOAD, prefix, limit=1)

    def _register_storage_commands(self, admin: AdminAPI) -> None:
        assert self.store is not None
        self.storage_admin = StorageAdmin(self.store)

        async def status(args: dict[str, Any]) -> Any:
            info = self._info()
            info.pop("bucket_is_empty")
            return info

        admin.commands.update({**self.storage_admin.commands(), "status": status})

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
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


async def run_server(options: ServerOptions, announce: bool = True) -> None:
    """Run until SIGINT or SIGTERM."""
    server = EmbeddedServer(options)
    info = await server.start()
    host, port = options.address
    scheme = "https" if info["tls"] else "http"
    if announce:
        print(f"leofs server: S3 on {scheme}://{host}:{port}, admin on "
              f"{options.admin_address[0]}:{options.admin_address[1]}, data in {options.data_dir}", flush=True)
        if info["generated"]:
            print("Root credentials were generated and saved in "
                  f"{options.data_dir / 'credentials.json'} (shown once):", flush=True)
            print(f"  AWS_ACCESS_KEY_ID={info['access_key']}", flush=True)
            print(f"  AWS_SECRET_ACCESS_KEY={info['secret_key']}", flush=True)
        print(f"Connect: aws --endpoint-url {scheme}://{host}:{port} s3 ls", flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await server.stop()
