"""Versions on a real 3-node cluster (N=3 W=2 R=1 D=2) with a SIGKILLed node: a version and a
delete marker written while the node was down are repaired to it, as entries of their own, and it
alone then serves them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from leofs.gateway.keys import NS_OBJECT, NS_VERSION, version_key
from leofs.gateway.records import object_meta_decoder
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.internal import replica_meta, replica_read

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsCluster]:
    c = LeofsCluster(tmp_path_factory.mktemp("vcluster"))
    try:
        c.start()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()
    for service in c.services:
        log = service.log_since(0)
        assert "Traceback" not in log, f"{service.name} logged a traceback:\n{log[-20000:]}"


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
