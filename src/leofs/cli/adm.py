"""``leofs adm``: the admin CLI, commands named as in ``leofs-adm``."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import click

from leofs.accounts import CANNED_ACLS
from leofs.cli.adm_client import AdmContext, ManagerUnreachable, find_secret, format_value, table


@click.group(short_help="Administer a server or cluster (as leofs-adm).")
@click.option("--manager", default="127.0.0.1:10010", show_default=True,
              help="Admin API address HOST:PORT (of a manager, or the --admin-address of leofs server).")
@click.option("--cluster-secret", default=None,
              help="Cluster secret (default: $LEOFS_CLUSTER_SECRET, else the one saved in --data DIR).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Data directory of a leofs server or manager, to read the cluster secret it saved there "
                   "(DIR/cluster-secret).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--internal-tls-cert", envvar="LEOFS_INTERNAL_TLS_CERT", type=click.Path(dir_okay=False), default=None,
              help="A manager with internal TLS: a certificate of the cluster CA to present (a member's will do).  "
                   "[default: $LEOFS_INTERNAL_TLS_CERT]")
@click.option("--internal-tls-key", envvar="LEOFS_INTERNAL_TLS_KEY", type=click.Path(dir_okay=False), default=None,
              help="Its private key (mode 0600).  [default: $LEOFS_INTERNAL_TLS_KEY]")
@click.option("--internal-tls-ca", envvar="LEOFS_INTERNAL_TLS_CA", type=click.Path(dir_okay=False), default=None,
              help="The cluster CA, to verify the manager.  [default: $LEOFS_INTERNAL_TLS_CA]")
@click.pass_context
def adm(ctx: click.Context, manager: str, cluster_secret: str | None, data: Path | None, as_json: bool,
        internal_tls_cert: str | None, internal_tls_key: str | None, internal_tls_ca: str | None) -> None:
    """Administer a leofs server or cluster; commands are named as in leofs-adm.

    The embedded server (leofs server) has one storage node, named `embedded`.
    """
    from leofs.internal.tls import InternalTls, TlsConfigError

    try:
        tls = InternalTls.from_options(internal_tls_cert, internal_tls_key, internal_tls_ca)
    except TlsConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.obj = AdmContext(manager, find_secret(cluster_secret, data), as_json, data,
                         tls=tls.client_context() if tls is not None else None)


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
        for node in nodes:
            pending = node.get("repair_pending")
            if isinstance(pending, dict):
                waits = ", ".join(f"{name} ({'no report yet' if n is None else f'{n} tasks'})"
                                  for name, n in sorted(pending.items()) if n != 0)  # fmt: skip
                click.echo(f"{node['name']} is recovering: waiting for the repair queues of {waits or '(none left)'}")
    else:
        click.echo("no members yet")


def _show_embedded_status(result: dict[str, Any]) -> None:
    levels = result.get("consistency") or {}
    workers = result.get("workers", 1)
    click.echo("mode        : embedded (manager, storage node and gateway in one server)")
    click.echo(f"processes   : {workers}")
    click.echo(f"consistency : N={levels.get('n')} W={levels.get('w')} R={levels.get('r')} D={levels.get('d')}")
    click.echo("")
    click.echo(table(result.get("nodes") or [], ["name", "type", "state", "address"]))
    click.echo("")
    click.echo("The storage node is named 'embedded': e.g. leofs adm du embedded")


@adm.command()
@pass_adm
def status(a: AdmContext) -> None:
    """Nodes, states, ring and consistency.

    Every member with its state and ring hashes; the consistency levels N, W, R, D.
    """
    result = a.call("status")
    if not a.as_json and isinstance(result, dict) and result.get("mode") == "cluster":
        _show_cluster_status(result)
    elif not a.as_json and isinstance(result, dict) and result.get("mode") == "embedded":
        _show_embedded_status(result)
    else:
        a.show(result)


#: storage node states that count as "attached" for wait-nodes (present and not leaving)
PRESENT = ("attached", "running", "restarted", "suspend", "recovering")


@adm.command("wait-nodes")
@click.argument("count", type=click.IntRange(0))
@click.option("--gateways", type=click.IntRange(0), default=0, show_default=True,
              help="Also wait for this many running gateways.")
@click.option("--timeout", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Give up (exit status 1) after this many seconds.")
@pass_adm
def wait_nodes(a: AdmContext, count: int, gateways: int, timeout: float) -> None:
    """Wait for COUNT storage nodes to attach.

    Attached, running, restarted or suspended nodes count.

    Storage nodes register with the manager a moment after they start; run this between starting
    them and `leofs adm start`. It also waits for the manager itself to answer.
    """
    deadline = time.monotonic() + timeout
    last: str = "no answer from the manager yet"
    while True:
        try:
            result = a.call("status")
            nodes = result.get("nodes") or []
            storage = [n for n in nodes if n.get("type") == "storage" and n.get("state") in PRESENT]
            running_gws = [n for n in nodes if n.get("type") == "gateway" and n.get("state") == "running"]
            if len(storage) >= count and len(running_gws) >= gateways:
                break
            last = f"{len(storage)} of {count} storage nodes" + (
                f", {len(running_gws)} of {gateways} gateways" if gateways else "")
        except ManagerUnreachable as err:
            last = err.message
        if time.monotonic() >= deadline:
            raise click.ClickException(f"timed out after {timeout:g} s: {last}")
        time.sleep(0.2)
    if a.as_json:
        a.show({"storage": [n["name"] for n in storage], "gateways": [n["name"] for n in running_gws]})
        return
    click.echo(f"{len(storage)} storage nodes attached: {', '.join(n['name'] for n in storage)}"
               + (f"; {len(running_gws)} gateways running" if gateways else ""))


@adm.command()
@pass_adm
def start(a: AdmContext) -> None:
    """Build the first RING; start the cluster.

    The ring is built from the attached storage nodes, which then become running.
    """
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


_node_command("suspend", "Take a running storage NODE out of service.\n\nIt stays in the ring; traffic skips it.")
_node_command("resume", "Return storage NODE to service.\n\nFor a suspended, restarted, detached or recovering node "
              "(a recovering one is set running before its repair queues drained).")
_node_command("detach", "Mark storage NODE to leave the ring.\n\nIt leaves at the next leofs adm rebalance.")
_node_command("remove-gateway", "Forget a stopped gateway NODE.")


@adm.command("update-consistency-level")
@click.argument("w", type=int)
@click.argument("r", type=int)
@click.argument("d", type=int)
@pass_adm
def update_consistency_level(a: AdmContext, w: int, r: int, d: int) -> None:
    """Set the consistency levels W, R and D.

    Each from 1 to N; N is fixed when the manager is first started.
    """
    a.show(a.call("update-consistency-level", w=w, r=r, d=d))


WHEREIS_COLUMNS = ["node", "state", "ring", "status", "clock", "etag", "object_size", "tombstone", "cnumber",
                   "timestamp"]


@adm.command()
@click.argument("path", metavar="BUCKET/KEY")
@click.option("--chunks", is_flag=True, help="Also list the replicas of every chunk of a large object.")
@pass_adm
def whereis(a: AdmContext, path: str, chunks: bool) -> None:
    """Where the replicas of BUCKET/KEY are.

    Each replica: node, clock, ETag, object size, tombstone and chunk count (cnumber; objects over
    5.5 MiB are stored as chunks behind a manifest).
    """
    result = a.call("whereis", path=path, chunks=chunks or None)
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
    if "object_size" in result:
        n = result.get("chunks") or 0
        stored = f"in {n} chunks (the replicas below hold its manifest)" if n else "inline"
        click.echo(f"object: {result['object_size']} bytes, {stored}")
    click.echo(table(rows, WHEREIS_COLUMNS))
    for chunk in result.get("chunk_replicas", []):
        where = ", ".join(f"{r['node']} {r['status']}" + (f" {r['size']} B" if r["size"] is not None else "")
                          for r in chunk["replicas"])
        click.echo(f"chunk {chunk['chunk']} (blob {chunk['blob']} #{chunk['index']}): {where}")


@adm.command("mq-stats")
@click.argument("node")
@pass_adm
def mq_stats(a: AdmContext, node: str) -> None:
    """The repair queue of storage NODE.

    Per target node: the tasks waiting (depth), the tasks replayed and the attempts failed since
    NODE started, and whether NODE skips the target (its breaker is open after a failed call).
    A node back after a stop stays `recovering` until every running node's depth toward it is 0.
    """
    result = a.call("mq-stats", node=node)
    queues = result.get("queues") if isinstance(result, dict) else None
    if a.as_json or not isinstance(queues, list) or not all(isinstance(q.get("targets"), dict) for q in queues):
        a.show(result)
        return
    for queue in queues:
        click.echo(f"{result.get('node', node)}: {queue.get('queue', 'repair')}: {queue.get('length', 0)} tasks, "
                   f"oldest {float(queue.get('oldest_age', 0.0)):.1f} s")
        rows = [{"target": t, **row} for t, row in sorted(queue["targets"].items())]
        if rows:
            click.echo(table(rows, [c for c in MQ_COLUMNS if any(c in r for r in rows)]))


MQ_COLUMNS = ["target", "state", "count", "replayed", "failed", "skipped", "next_attempt_in", "last_error"]


@adm.command("purge-cache")
@click.argument("path", metavar="BUCKET/KEY")
@pass_adm
def purge_cache(a: AdmContext, path: str) -> None:
    """Drop BUCKET/KEY from the gateways' caches."""
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
@click.option("--access-key", default=None, help="Use this access key instead of a generated one.")
@click.option("--secret-key", default=None, help="Use this secret key instead of a generated one.")
@click.option("--admin", is_flag=True, help="Give the user the admin role (default: general).")
@click.option("--email", default=None, help="The user's e-mail address (ACL grants by e-mail name the user by it).")
@pass_adm
def create_user(a: AdmContext, user_id: str, access_key: str | None, secret_key: str | None, admin: bool,
                email: str | None) -> None:
    """Create an S3 user and print its keys.

    The keys are generated unless given. Roles: general (the default) or admin.
    """
    user = a.call("create-user", user_id=user_id, access_key=access_key, secret_key=secret_key, admin=admin or None,
                  email=email)
    if a.as_json or not isinstance(user, dict):
        a.show(user)
        return
    click.echo(f"user {user['user_id']} ({user.get('role_name', user.get('role'))}) created; its keys:")
    click.echo(f"export AWS_ACCESS_KEY_ID={user['access_key']} AWS_SECRET_ACCESS_KEY={user['secret_key']}")


@adm.command("delete-user")
@click.argument("user_id")
@pass_adm
def delete_user(a: AdmContext, user_id: str) -> None:
    """Delete an S3 user."""
    a.show(a.call("delete-user", user_id=user_id))


@adm.command("get-users")
@pass_adm
def get_users(a: AdmContext) -> None:
    """List users: role and access key.

    The role is general or admin.
    """
    users = a.call("get-users")
    if a.as_json:
        a.show(users)
        return
    rows = [{**u, "role": u.get("role_name", u.get("role"))} for u in users]
    if not rows:
        click.echo("no users")
        return
    click.echo(table(rows, ["user_id", "role", "access_key", "created"]))


@adm.command("add-bucket")
@click.argument("bucket")
@click.argument("access_key")
@click.option("--acl", default=None, type=click.Choice(CANNED_ACLS),
              help="Canned ACL of the new bucket (default: private).")
@pass_adm
def add_bucket(a: AdmContext, bucket: str, access_key: str, acl: str | None) -> None:
    """Create BUCKET owned by ACCESS_KEY's user."""
    a.show(a.call("add-bucket", bucket=bucket, access_key=access_key, acl=acl))


@adm.command("delete-bucket")
@click.argument("bucket")
@click.argument("access_key", required=False)
@pass_adm
def delete_bucket(a: AdmContext, bucket: str, access_key: str | None) -> None:
    """Delete an empty BUCKET.

    With ACCESS_KEY, only if that user owns it.
    """
    a.show(a.call("delete-bucket", bucket=bucket, access_key=access_key))


@adm.command("get-buckets")
@click.argument("access_key", required=False)
@pass_adm
def get_buckets(a: AdmContext, access_key: str | None) -> None:
    """List buckets (all, or ACCESS_KEY's).

    Without ACCESS_KEY every bucket; with it, only the buckets that user owns.
    """
    a.show(a.call("get-buckets", access_key=access_key), ["name", "owner", "acl", "region", "created"])


@adm.command("get-bucket", hidden=True)
@click.argument("access_key")
@pass_adm
def get_bucket(a: AdmContext, access_key: str) -> None:
    """The buckets of ACCESS_KEY: leofs-adm's name for get-buckets ACCESS_KEY (kept for scripts)."""
    a.show(a.call("get-buckets", access_key=access_key), ["name", "owner", "acl", "region", "created"])


@adm.command("update-acl")
@click.argument("bucket")
@click.argument("access_key")
@click.argument("acl")
@pass_adm
def update_acl(a: AdmContext, bucket: str, access_key: str, acl: str) -> None:
    """Set a canned ACL on BUCKET.

    ACL is one of private, public-read, public-read-write, authenticated-read. ACCESS_KEY must be the
    bucket owner's access key: the ACL's grants are made out to the owner, and giving it guards
    against changing the ACL of someone else's bucket by a typo in BUCKET.
    """
    a.show(a.call("update-acl", bucket=bucket, access_key=access_key, acl=acl))


@adm.command("add-endpoint")
@click.argument("endpoint")
@pass_adm
def add_endpoint(a: AdmContext, endpoint: str) -> None:
    """Add a host name for virtual-host buckets.

    With ENDPOINT s3.example.com, bucket.s3.example.com addresses the bucket.
    """
    a.show(a.call("add-endpoint", endpoint=endpoint))


@adm.command("delete-endpoint")
@click.argument("endpoint")
@pass_adm
def delete_endpoint(a: AdmContext, endpoint: str) -> None:
    """Remove a virtual-host ENDPOINT."""
    a.show(a.call("delete-endpoint", endpoint=endpoint))


@adm.command("get-endpoints")
@pass_adm
def get_endpoints(a: AdmContext) -> None:
    """List the virtual-host endpoints."""
    a.show(a.call("get-endpoints"))


@adm.command()
@click.argument("node")
@pass_adm
def du(a: AdmContext, node: str) -> None:
    """Objects and bytes per container of NODE.

    Active: what live objects use; total: everything in the container's log, including overwritten and
    deleted data that compact-start reclaims.
    """
    a.show(a.call("du", node=node))


@adm.command("compact-start")
@click.argument("node")
@click.argument("containers", default="all")
@click.option("--wait", is_flag=True, help="Return when the compaction has finished, with its result.")
@pass_adm
def compact_start(a: AdmContext, node: str, containers: str, wait: bool) -> None:
    """Start compacting the containers of NODE.

    CONTAINERS is `all` (the default) or a comma-separated list of container numbers. Compaction
    runs online and reclaims the space of overwritten and deleted objects. Follow it with
    compact-status NODE, or pass --wait.
    """
    result = a.call("compact-start", node=node, containers=containers, wait=wait or None)
    if a.as_json or not isinstance(result, dict):
        a.show(result)
        return
    if wait:
        click.echo(f"compaction of {node} finished: containers {format_value('done', result.get('done'))} compacted, "
                   f"{result.get('reclaimed_bytes', 0)} bytes reclaimed")
        return
    click.echo(f"compaction of {node} started (containers: {containers}); it runs in the background.")
    click.echo(f"Follow it with: leofs adm compact-status {node}   (or start it with --wait)")


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
    """Verify the checksums of every needle on NODE.

    Reports how many needles were checked and lists the damaged ones; exits with status 1 when any is
    damaged.
    """
    result = a.call("diagnose-start", node=node)
    damaged = result.get("damaged", []) if isinstance(result, dict) else []
    if a.as_json:
        a.show(result)
    else:
        checked = result.get("checked", "?") if isinstance(result, dict) else "?"
        click.echo(f"{node}: checked {checked} needles, {len(damaged)} damaged")
        if damaged:
            click.echo(table(damaged, ["container", "generation", "offset", "key", "reason"]))
    if damaged:
        sys.exit(1)


@adm.command()
@click.option("--grace", type=float, default=None,
              help="Only chunks older than this many seconds (default 1 day; never below twice the "
                   "gateway's --body-deadline).")
@pass_adm
def gc(a: AdmContext, grace: float | None) -> None:
    """Delete orphaned chunks.

    Failed or interrupted large uploads leave chunks that no object points at.
    """
    a.show(a.call("gc", grace=grace))


@adm.command("expire-uploads")
@click.option("--older-than", type=float, default=None,
              help="Abort multipart uploads initiated more than this many seconds ago (default 7 days).")
@pass_adm
def expire_uploads(a: AdmContext, older_than: float | None) -> None:
    """Abort multipart uploads left incomplete."""
    a.show(a.call("expire-uploads", older_than=older_than))
