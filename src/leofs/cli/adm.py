"""``leofs adm``: the admin CLI, commands named as in ``leofs-adm``."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from leofs.manager.admin import SECRET_HEADER


class AdmContext:
    def __init__(self, manager: str, secret: str | None, as_json: bool) -> None:
        self.manager = manager
        self.secret = secret
        self.as_json = as_json

    def call(self, command: str, **args: Any) -> Any:
        if not self.secret:
            raise click.ClickException(
                "no cluster secret: set LEOFS_CLUSTER_SECRET, or pass --cluster-secret or --data DIR")
        body = json.dumps({k: v for k, v in args.items() if v is not None}).encode()
        request = urllib.request.Request(
            f"http://{self.manager}/adm/{command}", data=body, method="POST",
            headers={"Content-Type": "application/json", SECRET_HEADER: self.secret},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                answer = json.loads(err.read())
            except ValueError:
                raise click.ClickException(f"{command}: HTTP {err.code}") from None
        except OSError as err:
            raise click.ClickException(f"cannot reach the manager at {self.manager}: {err}") from None
        if not answer.get("ok"):
            raise click.ClickException(f"{command}: {answer.get('message', answer.get('error'))}")
        return answer.get("result")

    def show(self, result: Any, columns: list[str] | None = None) -> None:
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
                    click.echo(f"{key.ljust(width)} : {_fmt(key, value)}")
        else:
            click.echo(result)


def _fmt(column: str, value: Any) -> str:
    if column in ("created", "time", "last_started", "last_finished") and isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table."""
    cells = [[_fmt(c, row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _secret(explicit: str | None, data: Path | None) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("LEOFS_CLUSTER_SECRET"):
        return os.environ["LEOFS_CLUSTER_SECRET"]
    if data is not None and (data / "cluster-secret").exists():
        return (data / "cluster-secret").read_text().strip()
    return None


@click.group()
@click.option("--manager", default="127.0.0.1:10010", show_default=True, help="Manager admin address HOST:PORT.")
@click.option("--cluster-secret", default=None, help="Cluster secret (default: $LEOFS_CLUSTER_SECRET).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory of an embedded server, to read its saved cluster secret.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def adm(ctx: click.Context, manager: str, cluster_secret: str | None, data: Path | None, as_json: bool) -> None:
    """Administer a leofs cluster (commands as in leofs-adm)."""
    ctx.obj = AdmContext(manager, _secret(cluster_secret, data), as_json)


pass_adm = click.make_pass_decorator(AdmContext)


NODE_COLUMNS = ["name", "type", "state", "address", "rack", "ring_current", "ring_previous", "heartbeat_age"]


def _show_cluster_status(result: dict[str, Any]) -> None:
    levels = result.get("consistency") or {}
    rack = levels.get("rack_aware_replicas")
    lines = [
        ("cluster state", result.get("cluster_state")),
        ("consistency", f"N={levels.get('n')} W={levels.get('w')} R={levels.get('r')} D={levels.get('d')}"
                        + (f" (rack-aware replicas {rack})" if rack is not None else "")),
        ("ring hash current", result.get("ring_hash_current") or "-"),
        ("ring hash previous", result.get("ring_hash_previous") or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)} : {value}")
    nodes = result.get("nodes") or []
    if nodes:
        click.echo("")
        click.echo(table(nodes, NODE_COLUMNS))
    else:
        click.echo("no members yet")


@adm.command()
@pass_adm
def status(a: AdmContext) -> None:
    """Nodes, states, ring hashes and consistency levels."""
    result = a.call("status")
    if not a.as_json and isinstance(result, dict) and result.get("mode") == "cluster":
        _show_cluster_status(result)
    else:
        a.show(result)


@adm.command()
@pass_adm
def start(a: AdmContext) -> None:
    """Build the first RING from the attached storage nodes and start the cluster."""
    result = a.call("start")
    if a.as_json:
        a.show(result)
        return
    click.echo(f"started: ring {result['ring_hash']} with {len(result['nodes'])} nodes "
               f"({', '.join(result['nodes'])}), N={result['replicas']}")
    for push in result.get("pushed", []):
        if not push["ok"]:
            click.echo(f"  ring not pushed to {push['node']} ({push['error']}); it pulls it on its next heartbeat")


def _node_command(name: str, doc: str) -> None:
    @adm.command(name, help=doc)
    @click.argument("node")
    @pass_adm
    def command(a: AdmContext, node: str) -> None:
        result = a.call(name, node=node)
        if a.as_json or not isinstance(result, dict) or "state" not in result:
            a.show(result)
            return
        click.echo(f"{result['name']}: {result['state']}")
        if result.get("note"):
            click.echo(result["note"])


_node_command("suspend", "Take a running storage NODE out of service (it stays in the ring).")
_node_command("resume", "Return a suspended, restarted or detached storage NODE to service.")
_node_command("detach", "Mark storage NODE to leave the ring at the next rebalance.")
_node_command("remove-gateway", "Forget a stopped gateway NODE.")


@adm.command("update-consistency-level")
@click.argument("w", type=int)
@click.argument("r", type=int)
@click.argument("d", type=int)
@pass_adm
def update_consistency_level(a: AdmContext, w: int, r: int, d: int) -> None:
    """Set W, R and D (each between 1 and N; N is fixed)."""
    a.show(a.call("update-consistency-level", w=w, r=r, d=d))


WHEREIS_COLUMNS = ["node", "state", "ring", "status", "clock", "etag", "size", "tombstone", "cnumber", "timestamp"]


@adm.command()
@click.argument("path", metavar="BUCKET/KEY")
@pass_adm
def whereis(a: AdmContext, path: str) -> None:
    """Where the replicas of BUCKET/KEY are, with clock, ETag, size, tombstone and chunk count."""
    result = a.call("whereis", path=path)
    if a.as_json:
        a.show(result)
        return
    rows = []
    for row in result["replicas"]:
        row = dict(row)
        if row.get("timestamp") is not None:
            row["timestamp"] = dt.datetime.fromtimestamp(row["timestamp"] / 1e6, dt.UTC).strftime(
                "%Y-%m-%d %H:%M:%S")
        rows.append(row)
    click.echo(f"{result['path']} (ring address {result['address']})")
    click.echo(table(rows, WHEREIS_COLUMNS))


@adm.command("mq-stats")
@click.argument("node")
@pass_adm
def mq_stats(a: AdmContext, node: str) -> None:
    """The repair queue of storage NODE."""
    a.show(a.call("mq-stats", node=node))


@adm.command("purge-cache")
@click.argument("path", metavar="BUCKET/KEY")
@pass_adm
def purge_cache(a: AdmContext, path: str) -> None:
    """Drop BUCKET/KEY from the cache of every running gateway."""
    result = a.call("purge-cache", path=path)
    if a.as_json or not isinstance(result, list):
        a.show(result)
        return
    if not result:
        click.echo("no running gateway")
    for row in result:
        click.echo(f"{row['gateway']}: {'purged' if row['ok'] else 'failed: ' + str(row.get('error'))}")


@adm.command("create-user")
@click.argument("user_id")
@click.option("--access-key", default=None)
@click.option("--secret-key", default=None)
@click.option("--admin", is_flag=True)
@pass_adm
def create_user(a: AdmContext, user_id: str, access_key: str | None, secret_key: str | None, admin: bool) -> None:
    """Create an S3 user (keys generated unless given)."""
    a.show(a.call("create-user", user_id=user_id, access_key=access_key, secret_key=secret_key, admin=admin or None))


@adm.command("delete-user")
@click.argument("user_id")
@pass_adm
def delete_user(a: AdmContext, user_id: str) -> None:
    """Delete an S3 user."""
    a.show(a.call("delete-user", user_id=user_id))


@adm.command("get-users")
@pass_adm
def get_users(a: AdmContext) -> None:
    """List the users."""
    a.show(a.call("get-users"), ["user_id", "role", "access_key", "created"])


@adm.command("add-bucket")
@click.argument("bucket")
@click.argument("access_key")
@click.option("--acl", default=None)
@pass_adm
def add_bucket(a: AdmContext, bucket: str, access_key: str, acl: str | None) -> None:
    """Create BUCKET owned by ACCESS_KEY."""
    a.show(a.call("add-bucket", bucket=bucket, access_key=access_key, acl=acl))


@adm.command("delete-bucket")
@click.argument("bucket")
@click.argument("access_key", required=False)
@pass_adm
def delete_bucket(a: AdmContext, bucket: str, access_key: str | None) -> None:
    """Delete an (empty) bucket."""
    a.show(a.call("delete-bucket", bucket=bucket, access_key=access_key))


@adm.command("get-buckets")
@click.argument("access_key", required=False)
@pass_adm
def get_buckets(a: AdmContext, access_key: str | None) -> None:
    """List all buckets (or those of ACCESS_KEY)."""
    a.show(a.call("get-buckets", access_key=access_key), ["name", "owner", "acl", "region", "created"])


@adm.command("get-bucket")
@click.argument("access_key")
@pass_adm
def get_bucket(a: AdmContext, access_key: str) -> None:
    """List the buckets of ACCESS_KEY."""
    a.show(a.call("get-buckets", access_key=access_key), ["name", "owner", "acl", "region", "created"])


@adm.command("update-acl")
@click.argument("bucket")
@click.argument("access_key")
@click.argument("acl")
@pass_adm
def update_acl(a: AdmContext, bucket: str, access_key: str, acl: str) -> None:
    """Set a canned ACL (private, public-read, public-read-write, authenticated-read) on BUCKET."""
    a.show(a.call("update-acl", bucket=bucket, access_key=access_key, acl=acl))


@adm.command("add-endpoint")
@click.argument("endpoint")
@pass_adm
def add_endpoint(a: AdmContext, endpoint: str) -> None:
    """Add a host name for virtual-host style addressing."""
    a.show(a.call("add-endpoint", endpoint=endpoint))


@adm.command("delete-endpoint")
@click.argument("endpoint")
@pass_adm
def delete_endpoint(a: AdmContext, endpoint: str) -> None:
    """Remove an endpoint."""
    a.show(a.call("delete-endpoint", endpoint=endpoint))


@adm.command("get-endpoints")
@pass_adm
def get_endpoints(a: AdmContext) -> None:
    """List the endpoints."""
    a.show(a.call("get-endpoints"))


@adm.command()
@click.argument("node")
@pass_adm
def du(a: AdmContext, node: str) -> None:
    """Active and total objects and bytes per container of NODE."""
    a.show(a.call("du", node=node))


@adm.command("compact-start")
@click.argument("node")
@click.argument("containers", default="all")
@click.option("--wait", is_flag=True, help="Return when the compaction has finished.")
@pass_adm
def compact_start(a: AdmContext, node: str, containers: str, wait: bool) -> None:
    """Compact all (or the listed, comma-separated) containers of NODE."""
    a.show(a.call("compact-start", node=node, containers=containers, wait=wait or None))


@adm.command("compact-status")
@click.argument("node")
@pass_adm
def compact_status(a: AdmContext, node: str) -> None:
    """Compaction state and progress of NODE."""
    a.show(a.call("compact-status", node=node))


@adm.command("diagnose-start")
@click.argument("node")
@pass_adm
def diagnose_start(a: AdmContext, node: str) -> None:
    """Check every needle of NODE; report damaged ones."""
    result = a.call("diagnose-start", node=node)
    a.show(result)
    if result and result.get("count"):
        sys.exit(1)


@adm.command()
@click.option("--grace", type=float, default=None,
              help="Only chunks older than this many seconds (default 1 day; never below twice the "
                   "gateway's --body-deadline).")
@pass_adm
def gc(a: AdmContext, grace: float | None) -> None:
    """Delete orphaned chunks (left by failed or interrupted large uploads)."""
    a.show(a.call("gc", grace=grace))


@adm.command("expire-uploads")
@click.option("--older-than", type=float, default=None,
              help="Abort multipart uploads initiated more than this many seconds ago (default 7 days).")
@pass_adm
def expire_uploads(a: AdmContext, older_than: float | None) -> None:
    """Abort multipart uploads that nobody completed."""
    a.show(a.call("expire-uploads", older_than=older_than))
