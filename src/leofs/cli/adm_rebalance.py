"""``leofs adm rebalance``, ``rebalance-status`` and ``rollback``: membership changes (LeoFS's names)."""

from __future__ import annotations

from typing import Any

import click

from leofs.cli.adm import adm, pass_adm
from leofs.cli.adm_client import AdmContext, table

PROGRESS_COLUMNS = ["node", "state", "phase", "done", "scanned", "entries", "objects", "bytes", "deferred", "eta",
                    "error"]


def _bar(done: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, done)) * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {done * 100:5.1f} %"


@adm.command()
@click.option("--rate", type=float, default=None,
              help="MB/s each storage node may push (default: the node's, 50 MB/s).")
@pass_adm
def rebalance(a: AdmContext, rate: float | None) -> None:
    """Apply attaches and detaches to the RING.

    Builds the new ring and moves the data whose owners changed. Writes use the new ring at once;
    reads fall back to the previous ring until every node has pushed its entries to their new
    owners (`leofs adm rebalance-status`). Refused while nodes report another ring hash than the
    manager's.
    """
    if rate is not None and rate <= 0:
        raise click.BadParameter("must be positive", param_hint="--rate")
    result = a.call("rebalance", rate=None if rate is None else int(rate * 1024 * 1024))
    if a.as_json:
        a.show(result)
        return
    click.echo(f"rebalancing: ring {result['previous_hash']} -> {result['ring_hash']}")
    click.echo(f"  joining: {', '.join(result['joining']) or '-'}; leaving: {', '.join(result['leaving']) or '-'}")
    click.echo(f"  copies that move: {result['predicted_copies_moved'] * 100:.1f} % of all replicas")
    for push in result.get("pushed", []):
        if not push["ok"]:
            click.echo(f"  ring not pushed to {push['node']} ({push['error']}); it pulls it on its next heartbeat")
    click.echo("follow it with: leofs adm rebalance-status")


@adm.command("rebalance-status")
@pass_adm
def rebalance_status(a: AdmContext) -> None:
    """Progress of the rebalance, per node.

    Objects and bytes sent per node, and an estimate of the time left.
    """
    result: dict[str, Any] = a.call("rebalance-status")
    if a.as_json:
        a.show(result)
        return
    if result["state"] != "rebalancing":
        click.echo(f"no rebalance in progress (ring {result['ring_hash_current']})")
        return
    nodes = result["nodes"]
    work = sum(2 * max(int(n.get("entries") or 0), 1) for n in nodes)
    scanned = sum(int(n.get("scanned") or 0) if not n.get("done") else 2 * max(int(n.get("entries") or 0), 1)
                  for n in nodes)  # fmt: skip
    click.echo(f"rebalancing {result['ring_hash_previous']} -> {result['ring_hash_current']}: "
               f"{result['done']}/{len(nodes)} nodes done")
    click.echo(_bar(scanned / work if work else 1.0))
    eta = result.get("eta")
    click.echo(f"sent {result['objects']} objects, {result['bytes']} bytes; "
               f"time left {'unknown' if eta is None else f'~{eta:.0f} s'}")
    click.echo(table(nodes, PROGRESS_COLUMNS))


@adm.command()
@click.argument("node")
@pass_adm
def rollback(a: AdmContext, node: str) -> None:
    """Undo an attach or detach of storage NODE.

    Only before a rebalance has applied it.
    """
    result = a.call("rollback", node=node)
    if a.as_json or not isinstance(result, dict):
        a.show(result)
        return
    click.echo(f"{result['name']}: {result['state']}")
