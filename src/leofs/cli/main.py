"""The ``leofs`` command: ``server`` (embedded default) and ``adm`` (admin CLI)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from leofs import __version__
from leofs.cli.adm import adm
from leofs.fsmode import private_umask
from leofs.gateway.context import GatewayConfig
from leofs.memory import return_large_buffers_to_the_os


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT (or :PORT, or PORT) to a tuple."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.group()
@click.version_option(__version__, prog_name="leofs")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              help="Least severe log messages written to stderr.")
def cli(log_level: str) -> None:
    """leofs: an S3-compatible object store.

    LeoFS in Python: `leofs server DIR` runs everything in one process; manager, storage and
    gateway run a cluster; adm administers either.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return_large_buffers_to_the_os()
    private_umask()  # every role: data, sockets and temp files readable by this user only


def _gateway_options(f: Any) -> Any:
    """The gateway's limits per process (GatewayConfig; beyond them: 503 SlowDown) and its free grace."""
    defaults = GatewayConfig()
    f = click.option("--max-connections", type=click.IntRange(1), default=defaults.max_connections,
                     show_default=True, help="Connections per process.")(f)
    f = click.option("--body-budget", type=click.IntRange(1), default=defaults.body_budget,
                     show_default=True, help="Request-body bytes buffered per process.")(f)
    f = click.option("--body-idle-timeout", type=click.FloatRange(min=0.1),
                     default=defaults.body_idle_timeout, show_default=True,
                     help="Seconds a request body may stall (then 400 RequestTimeout).")(f)
    f = click.option("--body-deadline", type=click.FloatRange(min=0.1), default=defaults.body_deadline,
                     show_default=True, help="Seconds a request body may take in all (then 400 "
                     "RequestTimeout); gc never collects chunks younger than twice this.")(f)
    return click.option("--free-grace", type=click.FloatRange(0), default=defaults.free_grace, show_default=True,
                        help="Seconds before a replaced version's chunks are freed (reads in progress finish "
                        "first).")(f)


def _gateway_config(max_connections: int, body_budget: int, body_idle_timeout: float, body_deadline: float,
                    free_grace: float) -> GatewayConfig:
    return GatewayConfig(max_connections=max_connections, body_budget=body_budget,
                         body_idle_timeout=body_idle_timeout, body_deadline=body_deadline, free_grace=free_grace)


def _protocol_option(f: Any) -> Any:
    # Only S3 exists; the option stays (hidden) so that scripts passing --protocol s3 keep working.
    return click.option("--protocol", type=click.Choice(["s3"]), default="s3", hidden=True,
                        help="Wire protocol of the gateway (only s3).")(f)


def _tls_options(f: Any) -> Any:
    f = click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="PEM private key of --tls-cert.")(f)
    return click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        help="PEM certificate (chain): serve S3 over https. Needs --tls-key.")(f)


@cli.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--address", default="127.0.0.1:8080", show_default=True, help="S3 listen address HOST:PORT.")
@click.option("--admin-address", default="127.0.0.1:10010", show_default=True,
              help="Admin API address (for leofs adm --manager).")
@_protocol_option
@_tls_options
@click.option("--containers", default=8, show_default=True, help="Containers per data directory (fixed at creation).")
@click.option("--no-sync", is_flag=True, help="Do not fsync writes (unsafe: for throwaway test data only).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes answering S3 on the shared port; 1 keeps everything in one process.  "
                   "[default: 1 on machines with 1 or 2 cores, else one per core, at most 8]")
@_gateway_options
def server(data_dir: Path, address: str, admin_address: str, protocol: str, tls_cert: Path | None,
           tls_key: Path | None, containers: int, no_sync: bool, workers: int | None, max_connections: int,
           body_budget: int, body_idle_timeout: float, body_deadline: float,
           free_grace: float) -> None:
    """Run everything on DATA_DIR in one server.

    The embedded default: manager, storage node and gateway (plus gateway worker processes, see
    --workers) over one data directory. Its storage node is named `embedded` in leofs adm.
    """
    from leofs.embedded import ServerOptions, default_workers, run_server

    if (tls_cert is None) != (tls_key is None):
        raise click.BadParameter("--tls-cert and --tls-key go together")
    options = ServerOptions(
        data_dir=data_dir, address=parse_address(address), admin_address=parse_address(admin_address),
        tls_cert=tls_cert, tls_key=tls_key, containers=containers, sync=not no_sync,
        workers=workers if workers is not None else default_workers(),
        gateway=_gateway_config(max_connections, body_budget, body_idle_timeout, body_deadline, free_grace),
    )
    asyncio.run(run_server(options))


@cli.command("server-worker", hidden=True)
@click.argument("spec")
def server_worker(spec: str) -> None:
    """A gateway worker process of ``leofs server`` (started by it, never by hand)."""
    import msgspec

    from leofs.workers import WorkerSpec, run_worker

    asyncio.run(run_worker(msgspec.json.decode(spec, type=WorkerSpec)))


def _secret_option(f: Any) -> Any:
    return click.option("--cluster-secret", envvar="LEOFS_CLUSTER_SECRET", default=None,
                        help="Shared cluster secret, 16 bytes or more (default: $LEOFS_CLUSTER_SECRET).")(f)


def _check_secret(secret: str) -> None:
    from leofs.internal.secret import check_secret_length

    try:
        check_secret_length(secret)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-secret") from None


@cli.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the manager's state (manager.sqlite3, cluster-secret, credentials.json).")
@click.option("--address", default="127.0.0.1:10010", show_default=True, help="Admin and internal API address.")
@click.option("--replicas", "n", default=1, show_default=True, help="N: copies of every object.")
@click.option("--write", "w", default=1, show_default=True, help="W: acks a write waits for.")
@click.option("--read", "r", default=1, show_default=True, help="R: replicas a read compares.")
@click.option("--delete", "d", default=1, show_default=True, help="D: acks a delete waits for.")
@_secret_option
def manager(data_dir: Path, address: str, n: int, w: int, r: int, d: int, cluster_secret: str | None) -> None:
    """Run the manager of a cluster.

    It keeps the members, the RING, users, keys, buckets and endpoints, and serves the admin API.
    """
    from leofs.manager.service import ManagerOptions, run_manager

    if not (1 <= w <= n and 1 <= r <= n and 1 <= d <= n and 1 <= n <= 8):
        raise click.BadParameter("need 1 <= W, R, D <= N <= 8")
    if cluster_secret:  # else the one saved in DATA/cluster-secret, or a new one generated there
        _check_secret(cluster_secret)
    asyncio.run(run_manager(ManagerOptions(data_dir=data_dir, address=parse_address(address), n=n, w=w, r=r, d=d,
                                           secret=cluster_secret)))


@cli.command()
@click.option("--name", required=True, help="Stable node name (shown by status and whereis).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the node's object store.")
@click.option("--manager", "manager_address", required=True, help="Manager address HOST:PORT.")
@click.option("--address", default="127.0.0.1:4010", show_default=True, help="Internal API address.")
@click.option("--rack", default=None, help="Rack (for rack-aware placement).")
@click.option("--vnodes", default=168, show_default=True, help="Virtual nodes on the ring (the node's weight).")
@click.option("--containers", default=8, show_default=True, help="Containers per data directory.")
@click.option("--no-sync", is_flag=True, help="Do not fsync writes (unsafe: for throwaway test data only).")
@_secret_option
def storage(name: str, data_dir: Path, manager_address: str, address: str, rack: str | None, vnodes: int,
            containers: int, no_sync: bool, cluster_secret: str | None) -> None:
    """Run a storage node."""
    from leofs.node.node import StorageNodeOptions, run_storage_node

    if not cluster_secret:
        raise click.BadParameter("a storage node needs the cluster secret (--cluster-secret or LEOFS_CLUSTER_SECRET)")
    _check_secret(cluster_secret)
    asyncio.run(run_storage_node(StorageNodeOptions(
        name=name, data_dir=data_dir, manager=manager_address, address=parse_address(address), rack=rack,
        vnodes=vnodes, containers=containers, sync=not no_sync, secret=cluster_secret)))


@cli.command()
@click.option("--manager", "manager_address", required=True, help="Manager address HOST:PORT.")
@click.option("--address", default="127.0.0.1:8080", show_default=True, help="S3 listen address.")
@click.option("--admin-address", default="127.0.0.1:10011", show_default=True,
              help="Admin listener (gc, expire-uploads, purge-cache from the manager); keep it internal.")
@click.option("--name", default=None, help="Gateway name (default gateway@ADDRESS).")
@_protocol_option
@_tls_options
@_gateway_options
@_secret_option
def gateway(manager_address: str, address: str, admin_address: str, name: str | None, protocol: str,
            tls_cert: Path | None, tls_key: Path | None, cluster_secret: str | None, max_connections: int,
            body_budget: int, body_idle_timeout: float, body_deadline: float, free_grace: float) -> None:
    """Run an S3 gateway in front of a cluster."""
    from leofs.gateway.cluster import GatewayOptions, run_gateway

    if not cluster_secret:
        raise click.BadParameter("a gateway needs the cluster secret (--cluster-secret or LEOFS_CLUSTER_SECRET)")
    _check_secret(cluster_secret)
    addr = parse_address(address)
    asyncio.run(run_gateway(GatewayOptions(
        manager=manager_address, address=addr, name=name or f"gateway@{addr[0]}:{addr[1]}",
        admin_address=parse_address(admin_address),
        tls_cert=tls_cert, tls_key=tls_key, secret=cluster_secret,
        config=_gateway_config(max_connections, body_budget, body_idle_timeout, body_deadline,
                               free_grace))))


cli.add_command(adm)


def main() -> None:
    cli()
