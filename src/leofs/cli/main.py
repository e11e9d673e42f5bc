"""The ``leofs`` command: ``server`` (embedded default) and ``adm`` (admin CLI)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import click
import msgspec
from click.core import ParameterSource

from leofs import __version__, config
from leofs.cli import (
    adm_rebalance,  # noqa: F401  (registers rebalance, rebalance-status, rollback on adm)
    recover,  # noqa: F401  (registers the recover-* commands on adm)
)
from leofs.cli.adm import adm
from leofs.cli.config_check import config_group
from leofs.config import GatewayConfig
from leofs.fsmode import private_umask
from leofs.memory import return_large_buffers_to_the_os


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT (or :PORT, or PORT) to a tuple."""
    try:
        return config.parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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


def _config_option(f: Any) -> Any:
    return click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        default=None, help="TOML file of options, one section per role (see leofs.sample.toml); "
                        "LEOFS_<SECTION>_<OPTION> variables and flags override it.")(f)


def _resolve(section: str, config_file: Path | None, renamed: dict[str, str] | None = None,
             only: tuple[str, ...] | None = None) -> Any:
    """The role's options: defaults < --config file < LEOFS_* environment < the flags given here.

    Only flags given on the command line count (click's ParameterSource), so that a flag's default
    does not hide the file's value; and only the section's own (``only``: some of them). ``renamed``
    maps a parameter to its option where the names differ.
    """
    ctx = click.get_current_context()
    renamed = renamed or {}
    options = only or config.SECTIONS[section].__struct_fields__
    flags: dict[str, Any] = {}
    for name, value in ctx.params.items():
        if ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        option = "sync" if name == "no_sync" else renamed.get(name, name)
        if option in options:
            flags[option] = (not value) if name == "no_sync" else value
    try:
        return config.resolve(section, config_file, os.environ, flags)
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _required(value: str | None, what: str) -> str:
    if not value:
        raise click.UsageError(f"missing {what}")
    return value


def _gateway_options(f: Any) -> Any:
    """Every GatewayConfig setting as a flag (--chunk-size for chunk_size), for `server` and `gateway`."""
    defaults = GatewayConfig()
    for field in reversed(msgspec.structs.fields(GatewayConfig)):
        default = getattr(defaults, field.name)
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(default, bool):
            f = click.option(flag, is_flag=True, default=default, help=config.GATEWAY_HELP[field.name])(f)
            continue
        f = click.option(flag, type=type(default), default=default, show_default=True,
                         help=config.GATEWAY_HELP[field.name])(f)
    return f


def _internal_protocol_option(f: Any) -> Any:
    return click.option("--internal-protocol", type=click.Choice(list(config.INTERNAL_PROTOCOLS)), default=None,
                        help="Object calls to storage nodes: the binary protocol (default) or HTTP "
                             "(A/B measurement, debugging).")(f)  # fmt: skip


def _protocol_option(f: Any) -> Any:
    f = click.option("--rest-address", default=None,
                     help="REST API listen address HOST:PORT, with --protocol s3,rest.")(f)
    return click.option("--protocol", type=click.Choice(list(config.PROTOCOLS)), default="s3", show_default=True,
                        help="What --address serves: the S3 API, the REST API (plain GET/HEAD/PUT/DELETE on "
                             "/bucket/key), or both (s3,rest: REST on --rest-address).")(f)


def _check_headers_file(path: str) -> None:
    """An invalid custom-header file stops the start with the line at fault (a reload keeps the old)."""
    if not path:
        return
    from leofs.gateway.custom_headers import HeadersConfigError, load

    try:
        load(Path(path))
    except HeadersConfigError as exc:
        raise click.UsageError(f"headers_config_file: {exc}") from None


def _listeners(protocol: str, address: str, rest_address: str | None) -> tuple[str, tuple[str, int] | None]:
    try:
        main, rest = config.listeners(protocol, address, rest_address)
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return main, parse_address(rest) if rest else None


def _tls_options(f: Any) -> Any:
    f = click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="PEM private key of --tls-cert.")(f)
    return click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        help="PEM certificate (chain): serve S3 over https. Needs --tls-key.")(f)


def _tls_files(cert: str | None, key: str | None) -> tuple[Path | None, Path | None]:
    if (cert is None) != (key is None):
        raise click.BadParameter("--tls-cert and --tls-key go together")
    for path in (cert, key):
        if path is not None and not Path(path).is_file():
            raise click.BadParameter(f"no such file: {path}")
    return (Path(cert) if cert else None), (Path(key) if key else None)


def _internal_tls_options(f: Any) -> Any:
    path = click.Path(dir_okay=False, path_type=Path)
    f = click.option("--internal-tls-ca", type=path, default=None,
                     help="PEM CA that signs every cluster member's certificate (internal TLS).")(f)
    f = click.option("--internal-tls-key", type=path, default=None,
                     help="PEM private key of --internal-tls-cert (mode 0600).")(f)
    return click.option("--internal-tls-cert", type=path, default=None,
                        help="PEM certificate of this member: TLS on every internal link (mutual, against "
                             "--internal-tls-ca). Needs all three; default $LEOFS_INTERNAL_TLS_CERT etc.")(f)


def _internal_tls(opts: Any) -> Any:
    """The role's InternalTls (None: plaintext); a usage error for incomplete or unusable files."""
    from leofs.internal.tls import InternalTls, TlsConfigError

    try:
        return InternalTls.from_options(opts.internal_tls_cert, opts.internal_tls_key, opts.internal_tls_ca)
    except TlsConfigError as exc:
        raise click.UsageError(str(exc)) from None


_SERVER = config.ServerConfig()


@cli.command()
@click.argument("data_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@_config_option
@click.option("--address", default=_SERVER.address, show_default=True,
              help="S3 (or, with --protocol rest, REST) listen address HOST:PORT.")
@click.option("--admin-address", default=_SERVER.admin_address, show_default=True,
              help="Admin API address (for leofs adm --manager).")
@_protocol_option
@_tls_options
@click.option("--containers", type=click.IntRange(1), default=_SERVER.containers, show_default=True,
              help="Containers per data directory (fixed at creation).")
@click.option("--no-sync", is_flag=True, help="Do not fsync writes (unsafe: for throwaway test data only).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes answering S3 on the shared port; 1 keeps everything in one process.  "
                   "[default: 1 on machines with 1 or 2 cores, else one per core, at most 8]")
@_gateway_options
def server(config_file: Path | None, **_: Any) -> None:
    """Run everything on DATA_DIR in one server.

    The embedded default: manager, storage node and gateway (plus gateway worker processes, see
    --workers) over one data directory. Its storage node is named `embedded` in leofs adm. DATA_DIR
    may also come from `data_dir` in the [server] section of --config.
    """
    from leofs.embedded import ServerOptions, run_server
    from leofs.process_pool import default_workers

    opts: config.ServerConfig = _resolve("server", config_file)
    # [gateway] gives the gateway settings only: the listen addresses and TLS are [server]'s
    gateway: config.GatewaySection = _resolve("gateway", config_file, only=GatewayConfig.__struct_fields__)
    tls_cert, tls_key = _tls_files(opts.tls_cert, opts.tls_key)
    protocol, rest_address = _listeners(opts.protocol, opts.address, opts.rest_address)
    _check_headers_file(gateway.headers_config_file)
    options = ServerOptions(
        data_dir=Path(_required(opts.data_dir, "DATA_DIR (or data_dir in [server] of --config)")),
        address=parse_address(opts.address), admin_address=parse_address(opts.admin_address),
        protocol=protocol, rest_address=rest_address,
        tls_cert=tls_cert, tls_key=tls_key, containers=opts.containers, sync=opts.sync,
        workers=opts.workers if opts.workers is not None else default_workers(),
        gateway=gateway.settings(),
    )
    asyncio.run(run_server(options))


@cli.command("server-worker", hidden=True)
@click.argument("spec")
def server_worker(spec: str) -> None:
    """A gateway worker process of ``leofs server`` (started by it, never by hand)."""
    from leofs.workers import WorkerSpec, run_worker

    asyncio.run(run_worker(msgspec.json.decode(spec, type=WorkerSpec)))


def _secret_option(f: Any) -> Any:
    return click.option("--cluster-secret", default=None,
                        help="Shared cluster secret, 16 bytes or more (default: $LEOFS_CLUSTER_SECRET).")(f)


def _check_secret(secret: str) -> None:
    from leofs.internal.secret import check_secret_length

    try:
        check_secret_length(secret)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-secret") from None


_MANAGER = config.ManagerConfig()


@cli.command()
@_config_option
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the manager's state (manager.sqlite3, cluster-secret, credentials.json).  "
                   "[required, here or in --config]")
@click.option("--address", default=_MANAGER.address, show_default=True, help="Admin and internal API address.")
@click.option("--replicas", "replicas", default=_MANAGER.replicas, show_default=True, help="N: copies of every object.")
@click.option("--write", "write", default=_MANAGER.write, show_default=True, help="W: acks a write waits for.")
@click.option("--read", "read", default=_MANAGER.read, show_default=True, help="R: replicas a read compares.")
@click.option("--delete", "delete", default=_MANAGER.delete, show_default=True, help="D: acks a delete waits for.")
@_secret_option
@_internal_tls_options
def manager(config_file: Path | None, **_: Any) -> None:
    """Run the manager of a cluster.

    It keeps the members, the RING, users, keys, buckets and endpoints, and serves the admin API.
    """
    from leofs.manager.service import ManagerOptions, run_manager

    opts: config.ManagerConfig = _resolve("manager", config_file)
    if opts.cluster_secret:  # else the one saved in DATA/cluster-secret, or a new one generated there
        _check_secret(opts.cluster_secret)
    asyncio.run(run_manager(ManagerOptions(
        data_dir=Path(_required(opts.data_dir, "--data (or data_dir in [manager] of --config)")),
        address=parse_address(opts.address), n=opts.replicas, w=opts.write, r=opts.read, d=opts.delete,
        secret=opts.cluster_secret, heartbeat_timeout=opts.heartbeat_timeout, tls=_internal_tls(opts))))


_STORAGE = config.StorageConfig()


@cli.command()
@_config_option
@click.option("--name", help="Stable node name (shown by status and whereis).  [required, here or in --config]")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the node's object store.  [required, here or in --config]")
@click.option("--manager", "manager_address",
              help="Manager address HOST:PORT.  [required, here or in --config]")
@click.option("--address", default=_STORAGE.address, show_default=True, help="Internal API address.")
@click.option("--advertise-address", default=None,
              help="Address other processes reach this node at, when not --address (a proxy, NAT).")
@click.option("--rack", default=None, help="Rack (for rack-aware placement).")
@click.option("--vnodes", type=click.IntRange(1), default=_STORAGE.vnodes, show_default=True,
              help="Virtual nodes on the ring (the node's weight).")
@click.option("--containers", type=click.IntRange(1), default=_STORAGE.containers, show_default=True,
              help="Containers per data directory.")
@click.option("--no-sync", is_flag=True, help="Do not fsync writes (unsafe: for throwaway test data only).")
@_internal_protocol_option
@_secret_option
@_internal_tls_options
def storage(config_file: Path | None, **_: Any) -> None:
    """Run a storage node."""
    from leofs.internal.health import CallTimeouts
    from leofs.node.node import StorageNodeOptions, run_storage_node

    opts: config.StorageConfig = _resolve("storage", config_file, {"manager_address": "manager"})
    secret = _required(opts.cluster_secret, "the cluster secret: a storage node needs it (--cluster-secret or "
                       "LEOFS_CLUSTER_SECRET)")
    _check_secret(secret)
    asyncio.run(run_storage_node(StorageNodeOptions(
        name=_required(opts.name, "--name (or name in [storage] of --config)"),
        data_dir=Path(_required(opts.data_dir, "--data (or data_dir in [storage] of --config)")),
        manager=_required(opts.manager, "--manager (or manager in [storage] of --config)"),
        address=parse_address(opts.address), rack=opts.rack, vnodes=opts.vnodes, containers=opts.containers,
        sync=opts.sync, secret=secret, advertise=_advertised(opts.advertise_address),
        timeouts=CallTimeouts(opts.connect_timeout, opts.op_timeout, opts.body_timeout),
        binary=opts.internal_protocol == "binary", tls=_internal_tls(opts))))


def _advertised(value: str | None) -> str | None:
    if value is None:
        return None
    host, port = parse_address(value)
    return f"{host}:{port}"


_GATEWAY = config.GatewaySection()


@cli.command()
@_config_option
@click.option("--manager", "manager_address", help="Manager address HOST:PORT.  [required, here or in --config]")
@click.option("--address", default=_GATEWAY.address, show_default=True,
              help="S3 (or, with --protocol rest, REST) listen address.")
@click.option("--admin-address", default=_GATEWAY.admin_address, show_default=True,
              help="Admin listener (gc, expire-uploads, purge-cache from the manager); keep it internal.")
@click.option("--name", default=None, help="Gateway name (default gateway@ADDRESS).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes answering S3 on the shared port (one registers with the manager).  "
                   "[default: 1 on machines with 1 or 2 cores, else one per core, at most 8]")
@_protocol_option
@_tls_options
@_gateway_options
@_internal_protocol_option
@_secret_option
@_internal_tls_options
def gateway(config_file: Path | None, **_: Any) -> None:
    """Run an S3 gateway in front of a cluster."""
    from leofs.gateway.cluster import GatewayOptions
    from leofs.gateway_workers import run_gateway
    from leofs.internal.health import CallTimeouts
    from leofs.process_pool import default_workers

    opts: config.GatewaySection = _resolve("gateway", config_file, {"manager_address": "manager"})
    secret = _required(opts.cluster_secret, "the cluster secret: a gateway needs it (--cluster-secret or "
                       "LEOFS_CLUSTER_SECRET)")
    _check_secret(secret)
    tls_cert, tls_key = _tls_files(opts.tls_cert, opts.tls_key)
    addr = parse_address(opts.address)
    protocol, rest_address = _listeners(opts.protocol, opts.address, opts.rest_address)
    _check_headers_file(opts.headers_config_file)
    asyncio.run(run_gateway(GatewayOptions(
        manager=_required(opts.manager, "--manager (or manager in [gateway] of --config)"), address=addr,
        protocol=protocol, rest_address=rest_address,
        name=opts.name or f"gateway@{addr[0]}:{addr[1]}", admin_address=parse_address(opts.admin_address),
        tls_cert=tls_cert, tls_key=tls_key, secret=secret, config=opts.settings(),
        timeouts=CallTimeouts(opts.connect_timeout, opts.op_timeout, opts.body_timeout),
        workers=opts.workers if opts.workers is not None else default_workers(),
        binary=opts.internal_protocol == "binary", internal_tls=_internal_tls(opts))))


@cli.command("gateway-worker", hidden=True)
@click.argument("spec")
def gateway_worker(spec: str) -> None:
    """A worker process of ``leofs gateway --workers N`` (started by it, never by hand)."""
    from leofs.gateway_workers import GatewayWorkerSpec, run_gateway_worker

    asyncio.run(run_gateway_worker(msgspec.json.decode(spec, type=GatewayWorkerSpec)))


cli.add_command(adm)
cli.add_command(config_group)


def main() -> None:
    cli()
