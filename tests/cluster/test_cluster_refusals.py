"""What a cluster answers when it must refuse or has nothing to do: storage nodes whose disks are full
(507 InsufficientStorage, never 503), and purge-cache through the manager to the real gateway."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from leofs.ring import Member, build_ring
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _started(cluster: LeofsCluster) -> LeofsCluster:
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def full_cluster(tmp_path: Path) -> Iterator[LeofsCluster]:
    """storage2 and storage3 on 16 MiB tmpfs mounts: below a storage node's 64 MiB reserve, so they
    refuse every write; storage1 has room."""
    mounts = {}
    for name in ("storage2", "storage3"):
        mount = tmp_path / f"{name}-fs"
        mount.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
        if result.returncode != 0:
            for m in mounts.values():
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
        mounts[name] = mount
    cluster = LeofsCluster(tmp_path / "cluster", data_dirs={n: m / "data" for n, m in mounts.items()})
    try:
        yield _started(cluster)
    finally:
        cluster.stop()
        for mount in mounts.values():
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_replicas_answer_507_whoever_coordinates(full_cluster: LeofsCluster) -> None:
    """Two of three replicas full (W=2): whether the coordinator is the node with room (two replicas
    refuse) or a full one (its own write and one replica refuse), the client hears 507."""
    s3 = make_client(full_cluster.endpoint, connect_timeout=3, read_timeout=30)
    s3.create_bucket(Bucket="full")
    status = full_cluster.adm("status")
    ring = build_ring([Member(n["name"], n["address"], n.get("rack"), n.get("vnodes", 168))
                       for n in status["nodes"] if n["type"] == "storage"], replicas=3)  # fmt: skip
    assert ring.hash == status["ring_hash_current"]
    coordinators = set()
    for i in range(24):  # keys spread over all three nodes as coordinators
        key = f"k{i}"
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket="full", Key=key, Body=b"x" * 1000)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507, (key, err.value.response)
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        coordinators.add(ring.redundancy(f"full/{key}".encode())[0].name)
    assert coordinators == set(full_cluster.storage)  # each node coordinated some of them
    # deletes and reads keep working; the refused keys are absent
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket="full", Key="k0")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LeofsCluster]:
    cluster = LeofsCluster(tmp_path / "cluster")
    try:
        yield _started(cluster)
    finally:
        cluster.stop()


def test_purge_cache_reaches_the_real_gateway(cluster: LeofsCluster) -> None:
    """`leofs adm purge-cache` goes through the manager to every running gateway's own handler, which
    authenticates the call with the cluster secret and drops the key from its cache (here: nothing
    cached under it; tests/cluster/test_gateway_cache.py purges a cached one)."""
    rows = cluster.adm("purge-cache", "photos/cat.jpg")
    assert rows == [{"gateway": rows[0]["gateway"], "address": f"127.0.0.1:{cluster.gateway_admin_port}", "ok": True,
                     "result": {"purged": False, "cache": "inner"}}], rows  # fmt: skip
