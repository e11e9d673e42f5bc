"""``leofs adm recover-file | recover-node | recover-consistency | recover-damaged | recover-status``.

The node commands start a job on the storage node and, unless ``--no-wait``, follow it: a progress
bar on a terminal, the final counts (``--json``: as JSON) when it ends. Interrupting the command
does not stop the job; ``recover-status NODE`` shows it again.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from leofs.cli.adm import adm, pass_adm
from leofs.cli.adm_client import AdmContext

#: how often a followed job's status is asked for
POLL = 0.5
#: how long following a job survives an unreachable manager or node (restarting)
FOLLOW_PATIENCE = 120.0
STATUS_FIELDS = ["node", "kind", "state", "progress", "peers", "keys_compared", "buckets_compared",
                 "buckets_differing", "pulled", "pushed", "bytes_copied", "failed", "damaged_found", "repaired",
                 "resumes", "error"]  # fmt: skip


@adm.command("recover-file")
@click.argument("path")
@pass_adm
def recover_file(a: AdmContext, path: str) -> None:
    """Repair one object on all its replicas.

    PATH is BUCKET/KEY.

    Reads every replica's record (and, for a large object, every chunk's), picks the latest version
    (deletes count) and writes it to each replica that lacks it or holds an older one.
    """
    result = a.call("recover-file", path=path)
    if a.as_json:
        a.show(result)
        return
    click.echo(f"{path}: {result['keys']} keys checked, {result['copies_repaired']} copies repaired")
    if result.get("unreachable"):
        click.echo(f"not reachable (run again once they are back): {', '.join(result['unreachable'])}")


def _job_command(name: str, doc: str) -> None:
    @adm.command(name, help=doc)
    @click.argument("node")
    @click.option("--rate", type=click.FloatRange(0), default=0, show_default=True,
                  help="Objects copied per second at most (0 = no limit), so client traffic keeps priority.")
    @click.option("--restart", is_flag=True, help="Start over instead of resuming a failed run from its checkpoint.")
    @click.option("--no-wait", is_flag=True, help="Start the job and return (follow it with recover-status).")
    @pass_adm
    def command(a: AdmContext, node: str, rate: float, restart: bool, no_wait: bool) -> None:
        result = a.call(name, node=node, rate=rate, restart=restart or None)
        if no_wait:
            a.show(_fields(result))
            return
        _follow(a, node, result)


_job_command("recover-node", """Rebuild NODE from the other replicas.

While it runs, NODE refuses reads of keys it does not hold yet when no other replica can confirm
them, so no read answers 404 for an object that exists. Resumes from its checkpoint after a restart.""")
_job_command("recover-consistency", """Anti-entropy between NODE and its peers.

NODE's copies are compared with the other nodes' by hashed buckets (one digest exchange per
peer; only differing buckets are listed key by key) and fixed in both directions: the latest
version wins, deletes included.""")
_job_command("recover-damaged", """Repair NODE's damaged needles (scrub).""")


@adm.command("recover-status")
@click.argument("node")
@pass_adm
def recover_status(a: AdmContext, node: str) -> None:
    """Progress and counts of NODE's recovery job."""
    a.show(_fields(a.call("recover-status", node=node)))


def _fields(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in STATUS_FIELDS if k in status}


def _follow(a: AdmContext, node: str, status: dict[str, Any]) -> None:
    """Poll until the job ends; a progress bar on a terminal. Exit status 1 when it failed."""
    tty = sys.stdout.isatty() and not a.as_json
    unanswered = 0.0
    while status.get("state") == "running":
        if tty:
            _draw(status)
        time.sleep(POLL)
        try:
            status = a.call("recover-status", node=node)
            unanswered = 0.0
        except click.ClickException:  # the manager or the node restarting: the job goes on (or resumes)
            unanswered += POLL
            if unanswered > FOLLOW_PATIENCE:
                raise
            continue
    if tty:
        _draw(status)
        click.echo("")
    a.show(_fields(status))
    if status.get("state") == "failed":
        raise click.ClickException(f"{status.get('kind')} on {node} failed: {status.get('error')} "
                                   "(run the same command again to resume)")  # fmt: skip


def _draw(status: dict[str, Any]) -> None:
    width = 30
    done = float(status.get("progress") or 0.0)
    bar = "#" * int(done * width) + "-" * (width - int(done * width))
    line = (f"\r{status.get('kind', '')} [{bar}] {done * 100:5.1f}%  compared {status.get('keys_compared', 0)}"
            f"  pulled {status.get('pulled', 0)}  pushed {status.get('pushed', 0)}  failed {status.get('failed', 0)}")
    click.echo(line, nl=False)
