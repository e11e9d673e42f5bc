"""Through a cluster gateway: a bucket created again never sees the objects a deleted bucket of its
name left on the storage nodes (see tests/integration/test_bucket_generations.py for how the state a
write dying before its undo leaves is made; here on every storage node)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.test_bucket_generations import OLD, Saved, put_back, set_aside
from tests.support.cluster import LeofsCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _with_nodes_stopped(cluster: LeofsCluster, work: Callable[[str, Path], None]) -> None:
    """Stop every storage node, run ``work`` on each one's store, start them again."""
    for node in cluster.storage.values():
        node.stop()
    for name in cluster.storage:
        work(name, cluster.base / name)
    for node in cluster.storage.values():
        node.start()
    cluster.wait_until(lambda: set(cluster.node_states().values()) == {"running"}, timeout=60,
                       what="storage nodes running again")
    cluster.wait_gateway_ready()
    # the gateway learns the nodes are running again from the manager's long poll, a moment later;
    # until then it reads from none of them (they were recovering)
    s3 = make_client(cluster.endpoint, connect_timeout=3, read_timeout=15)

    def reads() -> bool:
        try:
            s3.list_objects_v2(Bucket="gen")
            return True
        except ClientError as err:
            return err.response["Error"]["Code"] == "NoSuchBucket"

    cluster.wait_until(reads, timeout=60, what="the gateway reading from the storage nodes")


def test_cluster_gateway_hides_a_deleted_generation(tmp_path: Path) -> None:
    cluster = LeofsCluster(tmp_path / "cluster")
    try:
        cluster.start()
        s3 = make_client(cluster.endpoint, connect_timeout=3, read_timeout=15)
        s3.create_bucket(Bucket="gen")
        for key, body in OLD.items():
            s3.put_object(Bucket="gen", Key=key, Body=body)
        saved: dict[str, list[Saved]] = {}

        def take(name: str, store: Path) -> None:
            saved[name] = asyncio.run(set_aside(store, b"gen/"))

        _with_nodes_stopped(cluster, take)
        assert any(len(records) == len(OLD) for records in saved.values())
        s3.delete_bucket(Bucket="gen")
        s3.create_bucket(Bucket="gen")
        _with_nodes_stopped(cluster, lambda name, store: asyncio.run(put_back(store, saved[name])))
        s3.put_object(Bucket="gen", Key="new", Body=b"bob's")
        for key in OLD:
            for call in (s3.get_object, s3.head_object):
                with pytest.raises(ClientError) as info:
                    call(Bucket="gen", Key=key)
                assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="gen")["Contents"]] == ["new"]
        listed = s3.list_objects(Bucket="gen", Delimiter="/")
        assert [o["Key"] for o in listed["Contents"]] == ["new"] and "CommonPrefixes" not in listed
        s3.delete_object(Bucket="gen", Key="new")
        s3.delete_bucket(Bucket="gen")  # the old records do not make it BucketNotEmpty
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
