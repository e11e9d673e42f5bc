"""The ``leofs`` command: ``server`` (embedded default) and ``adm`` (admin CLI)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from leofs import __version__
from leofs.cli.adm import adm


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
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """leofs: an S3-compatible distributed object store (LeoFS in Python)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--address", default="127.0.0.1:8080", show_default=True, help="S3 listen address HOST:PORT.")
@click.option("--admin-address", default="127.0.0.1:10010", show_default=True, help="Admin API address.")
@click.option("--protocol", type=click.Choice(["s3", "rest"]), default="s3", show_default=True)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--containers", default=8, show_default=True, help="Containers per data directory (fixed at creation).")
@click.option("--no-sync", is_flag=True, help="Do not fsync writes (unsafe: for throwaway test data only).")
def server(data_dir: Path, address: str, admin_address: str, protocol: str, tls_cert: Path | None,
           tls_key: Path | None, containers: int, no_sync: bool) -> None:
    """Run manager, storage and gateway in one process on DATA_DIR (the embedded default)."""
    from leofs.embedded import ServerOptions, run_server

    if (tls_cert is None) != (tls_key is None):
        raise click.BadParameter("--tls-cert and --tls-key go together")
    if protocol != "s3":
        raise click.ClickException("the REST protocol is not available yet; use --protocol s3")
    options = ServerOptions(
        data_dir=data_dir, address=parse_address(address), admin_address=parse_address(admin_address),
        tls_cert=tls_cert, tls_key=tls_key, containers=containers, sync=not no_sync,
    )
    asyncio.run(run_server(options))


cli.add_command(adm)


def main() -> None:
    cli()
