"""``leofs config check FILE``: validate a configuration file and print the effective values."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from leofs import config


@click.group("config")
def config_group() -> None:
    """Check the --config files of every role."""


@config_group.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the effective values as JSON.")
def check(file: Path, as_json: bool) -> None:
    """Validate FILE and print the effective values.

    Unknown sections or keys and values of the wrong type are errors that name the key. The values
    printed are those a role started with `--config FILE` would use before its flags: defaults,
    then FILE, then the LEOFS_<SECTION>_<OPTION> environment variables. Secrets print as (set).
    The protocol and rest_address of [server] and [gateway] must go together, and a
    headers_config_file must parse.
    """
    try:
        effective = config.effective(config.read_file(file), os.environ)
        _check_gateway_files(effective)
        values = config.redacted(effective)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    click.echo("\n\n".join(_section(name, options) for name, options in values.items()))


def _check_gateway_files(effective: config.LeofsConfig) -> None:
    from leofs.gateway.custom_headers import HeadersConfigError, load

    for name, section in (("server", effective.server), ("gateway", effective.gateway)):
        try:
            config.listeners(section.protocol, section.address, section.rest_address)
        except config.ConfigError as exc:
            raise config.ConfigError(f"[{name}] {exc}") from None
    if effective.gateway.headers_config_file:
        try:
            load(Path(effective.gateway.headers_config_file))
        except HeadersConfigError as exc:
            raise config.ConfigError(f"[gateway] headers_config_file: {exc}") from None


def _section(name: str, options: dict[str, Any]) -> str:
    lines = [f"[{name}]"]
    for key, value in options.items():
        if value is None:
            lines.append(f"# {key} (not set)")
        else:  # JSON's scalars are TOML's (true/false, numbers, quoted strings)
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)
