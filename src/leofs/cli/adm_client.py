"""The admin API client behind ``leofs adm``: one POST per command, and how answers are printed
(a table, ``key : value`` lines, or JSON with ``--json``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from leofs.internal.messages import SECRET_HEADER


class ManagerUnreachable(click.ClickException):
    """No answer from the manager's admin address (wait-nodes keeps polling through this)."""


class AdmContext:
    """What every ``leofs adm`` command gets: where the admin API is, the secret, the output mode."""

    def __init__(self, manager: str, secret: str | None, as_json: bool, data: Path | None = None,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        """``tls``: a client context for a manager with internal TLS (https, mutual)."""
        self.manager = manager
        self.tls = tls
        self.secret = secret
        self.as_json = as_json
        self.data = data

    def call(self, command: str, **args: Any) -> Any:
        """Run ``command`` on the admin API; its result, or a ClickException with the error."""
        if not self.secret:
            where = f" ({self.data / 'cluster-secret'} does not exist)" if self.data is not None else ""
            raise click.ClickException(
                f"no cluster secret: set LEOFS_CLUSTER_SECRET, or pass --cluster-secret or --data DIR{where}")
        body = json.dumps({k: v for k, v in args.items() if v is not None}).encode()
        request = urllib.request.Request(
            f"{'https' if self.tls is not None else 'http'}://{self.manager}/adm/{command}", data=body, method="POST",
            headers={"Content-Type": "application/json", SECRET_HEADER: self.secret},
        )
        try:
            with urllib.request.urlopen(request, timeout=120, context=self.tls) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                answer = json.loads(err.read())
            except ValueError:
                raise click.ClickException(f"{command}: HTTP {err.code}") from None
        except OSError as err:
            raise ManagerUnreachable(f"cannot reach the manager at {self.manager}: {err}") from None
        if not answer.get("ok"):
            raise click.ClickException(f"{command}: {answer.get('message', answer.get('error'))}")
        return answer.get("result")

    def show(self, result: Any, columns: list[str] | None = None) -> None:
        """Print a result: JSON with --json, else a table or ``key : value`` lines."""
        if self.as_json:
            click.echo(json.dumps(result, indent=2, sort_keys=True))
            return
        if result is None:
            click.echo("OK")
        elif isinstance(result, list) and result and isinstance(result[0], dict):
            click.echo(table(result, columns or list(result[0].keys())))
        elif isinstance(result, list):
            for item in result:
                click.echo(item)
        elif isinstance(result, dict):
            width = max((len(k) for k in result), default=0)
            for key, value in result.items():
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    click.echo(f"{key}:")
                    click.echo(table(value, list(value[0].keys())))
                else:
                    click.echo(f"{key.ljust(width)} : {format_value(key, value)}")
        else:
            click.echo(result)


def format_value(column: str, value: Any) -> str:
    """One value for human output: times as UTC dates, lists and dicts as JSON, None as blank."""
    if column in ("created", "time", "last_started", "last_finished") and isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table."""
    cells = [[format_value(c, row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def find_secret(explicit: str | None, data: Path | None) -> str | None:
    """The cluster secret: the option, else LEOFS_CLUSTER_SECRET, else DATA/cluster-secret."""
    if explicit:
        return explicit
    if os.environ.get("LEOFS_CLUSTER_SECRET"):
        return os.environ["LEOFS_CLUSTER_SECRET"]
    if data is not None and (data / "cluster-secret").exists():
        return (data / "cluster-secret").read_text().strip()
    return None
