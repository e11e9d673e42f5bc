"""`leofs adm` against a real 3-node cluster: wait-nodes, unknown nodes answered with the known ones,
whereis on a chunked object (its size and chunks, with --chunks each chunk's replicas), and
`--data` on a manager's directory when the manager got its secret from the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.servers import CLUSTER_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

MIB = 1024 * 1024


def adm(cluster: LeofsCluster, *args: str, as_json: bool = False, secret: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", cluster.manager_address]
    if secret:
        cmd += ["--cluster-secret", CLUSTER_SECRET]
    if as_json:
        cmd.append("--json")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, f"{out.args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_admin_commands_on_a_cluster(tmp_path: Path) -> None:
    cluster = LeofsCluster(tmp_path / "cluster")
    try:
        _run(cluster)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


def _run(cluster: LeofsCluster) -> None:
    cluster.manager.start()
    early = adm(cluster, "wait-nodes", "1", "--timeout", "0.5")
    assert early.returncode != 0 and "timed out" in early.stderr and "0 of 1 storage nodes" in early.stderr

    # right after the nodes start some may not have registered yet: wait-nodes waits for them
    for node in cluster.storage.values():
        node.start()
    text = ok(adm(cluster, "wait-nodes", "3", "--timeout", "60"))
    assert text.startswith("3 storage nodes attached: storage1, storage2, storage3"), text
    assert len(cluster.node_states()) == 3
    cluster.adm("start")
    cluster.wait_until(lambda: set(cluster.node_states().values()) == {"running"}, what="nodes running")
    cluster.gateway.start()
    cluster.wait_gateway_ready()
    waited = json.loads(ok(adm(cluster, "wait-nodes", "3", "--gateways", "1", as_json=True)))
    assert waited["storage"] == ["storage1", "storage2", "storage3"] and len(waited["gateways"]) == 1

    for command in ("du", "compact-status", "diagnose-start", "mq-stats", "suspend"):
        out = adm(cluster, command, "embedded")
        assert out.returncode != 0, command
        assert "no storage node 'embedded'" in out.stderr, out.stderr
        assert "known storage nodes: storage1, storage2, storage3" in out.stderr, out.stderr

    s3 = make_client(cluster.endpoint)
    s3.create_bucket(Bucket="photos")
    body = bytes(range(256)) * (12 * MIB // 256)  # 12 MiB: three 5 MiB chunks behind a manifest
    s3.put_object(Bucket="photos", Key="big.bin", Body=body)
    s3.put_object(Bucket="photos", Key="small.txt", Body=b"hello")

    where = json.loads(ok(adm(cluster, "whereis", "photos/big.bin", as_json=True)))
    assert where["object_size"] == len(body) and where["chunks"] == 3, where
    assert "chunk_replicas" not in where
    assert len(where["replicas"]) == 3
    for row in where["replicas"]:
        assert row["status"] == "ok" and row["object_size"] == len(body) and row["cnumber"] == 3, row
        assert row["size"] < 4096  # the record itself is the manifest
    text = ok(adm(cluster, "whereis", "photos/big.bin"))
    assert f"object: {len(body)} bytes, in 3 chunks" in text, text

    detailed = json.loads(ok(adm(cluster, "whereis", "--chunks", "photos/big.bin", as_json=True)))
    chunks = detailed["chunk_replicas"]
    assert [c["chunk"] for c in chunks] == [1, 2, 3]
    assert sum(c["replicas"][0]["size"] for c in chunks) == len(body)
    for chunk in chunks:
        assert len(chunk["replicas"]) == 3 and {r["status"] for r in chunk["replicas"]} == {"ok"}, chunk
    text = ok(adm(cluster, "whereis", "--chunks", "photos/big.bin"))
    assert sum(line.startswith("chunk ") for line in text.splitlines()) == 3, text

    small = json.loads(ok(adm(cluster, "whereis", "photos/small.txt", as_json=True)))
    assert small["object_size"] == 5 and small["chunks"] == 0
    assert "object: 5 bytes, inline" in ok(adm(cluster, "whereis", "photos/small.txt"))

    # the manager ran with LEOFS_CLUSTER_SECRET in its environment: --data finds it all the same
    manager_dir = cluster.base / "manager"
    saved = manager_dir / "cluster-secret"
    assert saved.read_text().strip() == CLUSTER_SECRET and saved.stat().st_mode & 0o777 == 0o600
    env: dict[str, Any] = {k: v for k, v in cluster.manager.env.items() if k != "LEOFS_CLUSTER_SECRET"}
    status = json.loads(ok(adm(cluster, "--data", str(manager_dir), "status", as_json=True, secret=False, env=env)))
    assert status["mode"] == "cluster"
    assert f"Cluster secret: kept in {saved}" in cluster.manager.log()
