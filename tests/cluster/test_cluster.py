"""A real 3-node cluster (N=3 W=2 R=1 D=2): placement, failures, repair, the manager being down."""

from __future__ import annotations

import hashlib
import http.client
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from leofs.gateway.keys import NS_CHUNK, chunk_key
from leofs.gateway.records import manifest_decoder
from leofs.ring import Member, build_ring
from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster, running
from tests.support.internal import replica_meta, replica_read

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LeofsCluster]:
    with running(LeofsCluster(tmp_path / "cluster")) as c:
        yield c


def _client(cluster: LeofsCluster, **kw: Any) -> Any:
    return make_client(cluster.endpoint, connect_timeout=3, read_timeout=15, **kw)


def _ring(cluster: LeofsCluster) -> Any:
    status = cluster.adm("status")
    members = [Member(n["name"], n["address"], n.get("rack"), n.get("vnodes", 168))
               for n in status["nodes"] if n["type"] == "storage"]
    return build_ring(members, replicas=3)


def test_every_object_has_three_replicas_that_agree_with_the_ring(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="placement")
    ring = _ring(cluster)
    assert ring.hash == cluster.adm("status")["ring_hash_current"]
    for i in range(12):
        key = f"obj-{i}"
        body = f"payload {i}".encode()
        s3.put_object(Bucket="placement", Key=key, Body=body)
        # W=2: the third copy may still be on its way
        def complete(key: str = key) -> bool:
            rows = cluster.adm("whereis", f"placement/{key}")["replicas"]
            return sum(1 for r in rows if r.get("clock")) == 3
        cluster.wait_until(complete, what=f"3 copies of {key}")
        rows = cluster.adm("whereis", f"placement/{key}")["replicas"]
        nodes = [r["node"] for r in rows]
        assert len(set(nodes)) == 3
        assert nodes == [m.name for m in ring.redundancy(f"placement/{key}".encode())]
        assert len({r["clock"] for r in rows}) == 1
        assert {r["size"] for r in rows} == {len(body)}
        assert all(r["etag"] == hashlib.md5(body).hexdigest() for r in rows)


def test_one_node_down_keeps_writes_reads_and_listings_working(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="one-down")
    before = {f"before/{i}": random.randbytes(1000 + i) for i in range(20)}
    for key, body in before.items():
        s3.put_object(Bucket="one-down", Key=key, Body=body)
    cluster.storage["storage2"].kill()
    cluster.wait_until(lambda: cluster.node_states()["storage2"] == "stop", what="storage2 marked stop")
    after = {f"after/{i}": random.randbytes(2000 + i) for i in range(20)}
    after["after/large"] = random.randbytes(12 * 1024 * 1024)  # chunked: every chunk placed on its own
    for key, body in after.items():
        s3.put_object(Bucket="one-down", Key=key, Body=body)
    for key, body in {**before, **after}.items():
        assert s3.get_object(Bucket="one-down", Key=key)["Body"].read() == body
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="one-down", PaginationConfig={"PageSize": 7}):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert listed == sorted({**before, **after})
    s3.delete_object(Bucket="one-down", Key="before/0")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="one-down", Key="before/0")
    # the node comes back and the repair queue brings it up to date: every key it missed, with the
    # clock the others have (N=3 on three nodes: every node holds every key)
    cluster.storage["storage2"].start()
    cluster.wait_until(lambda: cluster.node_states()["storage2"] == "running", what="storage2 running again")
    back, other = cluster.storage_address("storage2"), cluster.storage_address("storage1")

    def same_as_storage1(key: str) -> bool:
        mine, theirs = replica_meta(back, f"one-down/{key}".encode()), replica_meta(other, f"one-down/{key}".encode())
        return mine is not None and theirs is not None and mine.clock == theirs.clock

    for key in after:
        cluster.wait_until(lambda k=key: same_as_storage1(k), timeout=60, what=f"the repair of {key} on storage2")
        if key != "after/large":  # (its parent record holds the chunk list, not the data)
            assert replica_read(back, f"one-down/{key}".encode()) == (200, after[key])
    # the delete it missed: a tombstone with the deleting clock, not the old copy
    cluster.wait_until(lambda: same_as_storage1("before/0"), timeout=60, what="the tombstone on storage2")
    tomb = replica_meta(back, b"one-down/before/0")
    assert tomb is not None and tomb.tombstone
    assert replica_read(back, b"one-down/before/0")[0] == 404


def test_a_node_killed_during_a_multi_chunk_put(cluster: LeofsCluster) -> None:
    """A 16 MiB PUT (four 5 MiB chunks, each placed on its own) loses a storage node half-way: the
    PUT is acknowledged (W=2 of the two left), reads back whole, and the node has every chunk once
    it is back."""
    s3 = _client(cluster)
    s3.create_bucket(Bucket="midput")
    old = random.randbytes(7 * 1024 * 1024)
    s3.put_object(Bucket="midput", Key="obj", Body=old)
    new = random.randbytes(16 * 1024 * 1024)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "midput", "Key": "obj"}, ExpiresIn=600)
    conn = http.client.HTTPConnection("127.0.0.1", cluster.gateway_port, timeout=60)
    conn.putrequest("PUT", url.split(str(cluster.gateway_port), 1)[1], skip_host=True)
    conn.putheader("Host", f"127.0.0.1:{cluster.gateway_port}")
    conn.putheader("Content-Length", str(len(new)))
    conn.endheaders()
    half = len(new) // 2
    conn.send(new[:half])
    victim = "storage2"
    cluster.storage[victim].kill()
    conn.send(new[half:])
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body
    assert resp.getheader("ETag") == f'"{hashlib.md5(new).hexdigest()}"'
    assert s3.get_object(Bucket="midput", Key="obj")["Body"].read() == new
    cluster.storage[victim].start()
    cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=30, what=f"{victim} running")
    address = cluster.storage_address(victim)
    live = {r["node"]: r for r in cluster.adm("whereis", "midput/obj")["replicas"]}
    cluster.wait_until(lambda: (e := replica_meta(address, b"midput/obj")) is not None
                       and e.clock == live["storage1"]["clock"], timeout=60, what=f"the new version on {victim}")
    manifest = replica_meta(address, b"midput/obj")
    assert manifest is not None and manifest.cnumber == 4  # the parent record: four chunks
    # each chunk is repaired by its own coordinator's queue, on its own schedule: wait for all of them
    status, data = replica_read(address, b"midput/obj")
    assert status == 200
    chunks = [chunk_key("midput", "obj", blob.blob_id, i)
              for blob in manifest_decoder.decode(data).blobs for i in range(1, blob.count + 1)]
    assert len(chunks) == 4
    cluster.wait_until(lambda: all(replica_meta(address, c, NS_CHUNK) is not None for c in chunks), timeout=60,
                       what=f"every chunk of the new version on {victim}")
    # every chunk of the new version reached the node that was down during part of the upload
    for other in ("storage1", "storage3"):
        cluster.storage[other].kill()
    cluster.wait_until(lambda: list(cluster.node_states().values()).count("stop") == 2, what="two nodes stop")
    assert s3.get_object(Bucket="midput", Key="obj")["Body"].read() == new  # R=1: from the victim alone


def test_two_nodes_down_writes_fail_with_503_and_reads_still_work(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="two-down")
    data = {f"k{i}": random.randbytes(500) for i in range(10)}
    for key, body in data.items():
        s3.put_object(Bucket="two-down", Key=key, Body=body)
    for name in ("storage1", "storage3"):
        cluster.storage[name].kill()
    cluster.wait_until(lambda: list(cluster.node_states().values()).count("stop") == 2, what="two nodes stop")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="two-down", Key="new", Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
    for key, body in data.items():  # R=1: the surviving copy answers
        assert s3.get_object(Bucket="two-down", Key=key)["Body"].read() == body


def test_killed_storage_nodes_during_writes_never_lose_an_acknowledged_write(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="crash")
    acked: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        client = _client(cluster)
        i = 0
        while not stop.is_set():
            key = f"w{seed}/{i}"
            body = rnd.randbytes(rnd.choice([10, 4096, 70000]))
            try:
                client.put_object(Bucket="crash", Key=key, Body=body)
            except (BotoCoreError, ClientError):
                continue
            with lock:
                acked[key] = body
            i += 1

    def count() -> int:
        with lock:
            return len(acked)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    try:
        cluster.wait_until(lambda: count() >= 20, timeout=60, what="writes before the kill")
        victim = random.choice(list(cluster.storage))
        cluster.storage[victim].kill()  # it coordinates some of the writes in flight
        at_kill = count()
        cluster.wait_until(lambda: count() >= at_kill + 20, timeout=60, what="writes with the node dead")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    for key, body in acked.items():
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == body, key
    cluster.storage[victim].start()
    cluster.wait_until(lambda: cluster.node_states()[victim] == "running", timeout=30, what=f"{victim} running")
    # R=1 from the restarted node itself: its own copy of every acknowledged write (repaired if it missed it)
    address = cluster.storage_address(victim)
    for key, body in acked.items():
        cluster.wait_until(lambda k=key, b=body: replica_read(address, f"crash/{k}".encode()) == (200, b),
                           timeout=60, what=f"{key} on {victim}")  # fmt: skip
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == body, key


def test_data_path_keeps_working_while_the_manager_is_down(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="no-manager")
    s3.put_object(Bucket="no-manager", Key="a", Body=b"1")
    cluster.manager.kill()
    s3.put_object(Bucket="no-manager", Key="b", Body=b"2")
    assert s3.get_object(Bucket="no-manager", Key="a")["Body"].read() == b"1"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="no-manager")["Contents"]] == ["a", "b"]
    cluster.manager.start()


def test_user_changes_reach_the_gateway(cluster: LeofsCluster) -> None:
    user = cluster.adm("create-user", "carol")
    carol = _client(cluster, access_key=user["access_key"], secret_key=user["secret_key"])

    def carol_known() -> bool:
        try:
            carol.list_buckets()
            return True
        except ClientError:
            return False

    # how fast is for benchmarks to measure; here only that it arrives (generous bound, no timing)
    cluster.wait_until(carol_known, timeout=60, what="the new user to reach the gateway")


def test_every_process_serves_metrics(cluster: LeofsCluster) -> None:
    import urllib.request

    s3 = _client(cluster)
    s3.create_bucket(Bucket="metrics")  # a bucket named "metrics" still works: metrics live elsewhere
    s3.put_object(Bucket="metrics", Key="k", Body=b"v")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="metrics")["Contents"]] == ["k"]

    def scrape(url: str) -> str:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    assert 'leofs_members{state="running",type="storage"} 3.0' in scrape(f"http://{cluster.manager_address}/metrics")
    writes = [scrape(f"http://127.0.0.1:{node.ports[0]}/metrics") for node in cluster.storage.values()]
    assert all("leofs_storage_writes_total" in text for text in writes)
    assert all("leofs_repair_queue_length" in text for text in writes)
    gateway = scrape(f"{cluster.endpoint}/_leofs_adm/metrics")
    assert 'leofs_s3_requests_total{operation="PutObject",status="200"}' in gateway


def test_concurrent_overwrites_and_reads_of_hot_keys_never_hang(cluster: LeofsCluster) -> None:
    """GETs racing PUTs of the same keys: every request is answered, with one whole version."""
    s3 = _client(cluster)
    s3.create_bucket(Bucket="hot")
    versions = {f"k{i}": {bytes([i]) * 4096} for i in range(4)}
    for key, bodies in versions.items():
        s3.put_object(Bucket="hot", Key=key, Body=next(iter(bodies)))
    errors: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        client = _client(cluster)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            key = f"k{rnd.randrange(4)}"
            try:
                if rnd.random() < 0.3:
                    body = rnd.randbytes(4096)
                    with lock:
                        versions[key].add(body)
                    client.put_object(Bucket="hot", Key=key, Body=body)
                else:
                    got = client.get_object(Bucket="hot", Key=key)["Body"].read()
                    with lock:
                        if got not in versions[key]:
                            errors.append(f"{key}: a body that was never written")
            except ClientError as err:
                if err.response["Error"]["Code"] != "ServiceUnavailable":  # a retryable race is allowed
                    errors.append(f"{key}: {err}")
            except BotoCoreError as err:
                errors.append(f"{key}: {err}")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a request never got an answer"
    assert errors == []


def test_gc_and_upload_expiry_through_the_manager(cluster: LeofsCluster) -> None:
    s3 = _client(cluster)
    s3.create_bucket(Bucket="upkeep")
    upload = s3.create_multipart_upload(Bucket="upkeep", Key="abandoned")["UploadId"]
    s3.upload_part(Bucket="upkeep", Key="abandoned", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    kept = s3.create_multipart_upload(Bucket="upkeep", Key="fresh")["UploadId"]
    report = cluster.adm("expire-uploads", "--older-than", "0")
    assert report["deleted"] == 2 and report["scanned"] == 2
    for key, upload_id in (("abandoned", upload), ("fresh", kept)):
        with pytest.raises(ClientError) as err:
            s3.list_parts(Bucket="upkeep", Key=key, UploadId=upload_id)
        assert err.value.response["Error"]["Code"] == "NoSuchUpload"
    gc = cluster.adm("gc", "--grace", "0")
    assert gc["deleted"] == 0  # the aborted upload's chunks were freed by the abort itself
