"""Versions on a real 3-node cluster (N=3 W=2 R=1 D=2): chunks of a version are freed only when
that version is removed (the gateway frees at once here, ``--free-grace 0``); with a SIGKILLed
node, a version and a delete marker written while it was down are repaired to it, as entries of
their own, and it alone then serves them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from leofs.gateway.keys import NS_CHUNK, NS_OBJECT, NS_VERSION, chunk_key, version_key
from leofs.gateway.records import Blob, manifest_decoder, object_meta_decoder
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.internal import replica_meta, replica_read

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    with running(LeofsCluster(tmp_path_factory.mktemp("vcluster"), gateway_args=("--free-grace", "0"))) as c:
        yield c


def _blobs(cluster: LeofsCluster, bucket: str, key: str, version_id: str) -> list[Blob]:
    status, data = replica_read(cluster.storage_address("storage1"), version_key(bucket, key, version_id), NS_VERSION)
    assert status == 200
    return manifest_decoder.decode(data).blobs


def _chunks_live(cluster: LeofsCluster, bucket: str, key: str, blobs: list[Blob]) -> list[bool]:
    """Whether each chunk of ``blobs`` is live on every node (N=3 on three nodes)."""
    out = []
    for blob in blobs:
        for index in range(1, blob.count + 1):
            for node in cluster.node_names:
                record = chunk_key(bucket, key, blob.blob_id, index)
                entry = replica_meta(cluster.storage_address(node), record, NS_CHUNK)
                out.append(entry is not None and not entry.tombstone)
    return out


def test_a_version_keeps_its_chunks_until_it_is_removed(cluster: LeofsCluster) -> None:
    s3: Any = make_client(cluster.endpoint, connect_timeout=3, read_timeout=15)
    bucket = "vchunks"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    size = 6 * 1024 * 1024  # over the inline threshold: two chunks
    first, second = b"a" * size, b"b" * size
    v1 = s3.put_object(Bucket=bucket, Key="big", Body=first)["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="big", Body=second)["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="big")["VersionId"]
    old, new = _blobs(cluster, bucket, "big", v1), _blobs(cluster, bucket, "big", v2)
    cluster.wait_until(lambda: all(_chunks_live(cluster, bucket, "big", old + new)), what="every chunk on every node")
    # neither the overwrite nor the delete marker freed anything (the gateway frees at once here)
    assert s3.get_object(Bucket=bucket, Key="big", VersionId=v1)["Body"].read() == first
    s3.delete_object(Bucket=bucket, Key="big", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == second
    # removing a version frees its chunks, and only its own
    s3.delete_object(Bucket=bucket, Key="big", VersionId=v1)
    cluster.wait_until(lambda: not any(_chunks_live(cluster, bucket, "big", old)), what="v1's chunks freed")
    assert all(_chunks_live(cluster, bucket, "big", new))
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == second
    # a suspended bucket's write replaces the null version, whose chunks go
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="big", Body=first)
    assert s3.head_object(Bucket=bucket, Key="big")["VersionId"] == "null"
    null = _blobs(cluster, bucket, "big", _current_sort_id(cluster, bucket, "big"))
    s3.put_object(Bucket=bucket, Key="big", Body=b"small")
    cluster.wait_until(lambda: not any(_chunks_live(cluster, bucket, "big", null)), what="the old null's chunks freed")
    assert all(_chunks_live(cluster, bucket, "big", new))
    assert s3.get_object(Bucket=bucket, Key="big", VersionId=v2)["Body"].read() == second
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"small"


def _current_sort_id(cluster: LeofsCluster, bucket: str, key: str) -> str:
    """The sort id (NS_VERSION key suffix) of the current version, from its record's meta."""
    entry = replica_meta(cluster.storage_address("storage1"), f"{bucket}/{key}".encode())
    assert entry is not None
    sort_id = object_meta_decoder.decode(entry.meta).version_id
    assert sort_id is not None
    return sort_id


def test_versions_and_delete_markers_are_repaired_to_a_node_that_was_down(cluster: LeofsCluster) -> None:
    s3: Any = make_client(cluster.endpoint, connect_timeout=3, read_timeout=15)
    bucket = "vfaults"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    kept = s3.put_object(Bucket=bucket, Key="gone", Body=b"kept")["VersionId"]

    cluster.storage["storage2"].kill()
    cluster.wait_until(lambda: cluster.node_states()["storage2"] == "stop", what="storage2 marked stop")
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]

    cluster.storage["storage2"].start()
    cluster.wait_until(lambda: cluster.node_states()["storage2"] == "running", what="storage2 running again")
    back, other = cluster.storage_address("storage2"), cluster.storage_address("storage1")

    def repaired(ns: int, key: bytes) -> bool:
        mine, theirs = replica_meta(back, key, ns), replica_meta(other, key, ns)
        return mine is not None and theirs is not None and mine.clock == theirs.clock

    for ns, key in ((NS_VERSION, version_key(bucket, "k", v2)), (NS_OBJECT, f"{bucket}/k".encode()),
                    (NS_VERSION, version_key(bucket, "gone", marker)), (NS_OBJECT, f"{bucket}/gone".encode())):
        cluster.wait_until(lambda ns=ns, key=key: repaired(ns, key), timeout=60, what=f"the repair of {key!r}")
    assert replica_read(back, version_key(bucket, "k", v2), NS_VERSION) == (200, b"two")
    entry = replica_meta(back, version_key(bucket, "gone", marker), NS_VERSION)
    assert entry is not None and object_meta_decoder.decode(entry.meta).delete_marker
    current = replica_meta(back, f"{bucket}/gone".encode())
    assert current is not None and current.tombstone  # the marker hides the key from plain reads

    # the repaired node alone (R=1) serves every version, the listing and the delete marker
    for name in ("storage1", "storage3"):
        cluster.storage[name].kill()
    cluster.wait_until(lambda: list(cluster.node_states().values()).count("stop") == 2, what="two nodes stop")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="gone", VersionId=kept)["Body"].read() == b"kept"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="gone")
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    listed = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("gone", kept, False), ("k", v2, True), ("k", v1, False)]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [("gone", marker, True)]
