"""The gateway object cache on a real 3-node cluster (N=3, W=2, R=2, D=2) with three gateways:

- A (the cluster's gateway): inner mode, a small RAM tier (one shard, so eviction order is
  predictable), a disk tier, the access log on (it names each request's cache state);
- B: a second inner-mode gateway with the default cache (writes through B are what A must see);
- C: http mode with a short TTL.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.servers import Service

pytestmark = pytest.mark.cluster

KIB = 1024
MIB = 1024 * KIB
RAM = 256 * KIB  # one shard: four 60 KiB objects fit, a fifth evicts the least recently used
THRESHOLD = 64 * KIB


class Cluster:
    def __init__(self, c: LeofsCluster, disk: Path, b: Service, http: Service) -> None:
        self.c = c
        self.disk = disk
        self.a = make_client(c.endpoint)
        self.b = make_client(f"http://127.0.0.1:{b.ports[0]}")
        self.http_endpoint = f"http://127.0.0.1:{http.ports[0]}"
        self.gateway = c.gateway


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cache")
    disk = base / "cache-a"
    c = LeofsCluster(
        base,
        nodes=3,
        n=3,
        w=2,
        r=2,
        d=2,
        gateway_args=(
            "--cache-ram",
            str(RAM),
            "--cache-shards",
            "1",
            "--cache-ram-threshold",
            str(THRESHOLD),
            "--cache-disk",
            f"{disk}:64MiB",
            "--access-log",
        ),
    )
    try:
        c.start()
        b = c.add_gateway("gateway-b")
        http = c.add_gateway(
            "gateway-c", ("--cache-mode", "http", "--cache-http-ttl", "5", "--cache-http-prefixes", "pub/")
        )
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    cluster = Cluster(c, disk, b, http)
    cluster.a.create_bucket(Bucket="cache")
    cluster.a.create_bucket(Bucket="pub", ACL="public-read")
    yield cluster
    c.stop()


def states(cl: Cluster, mark: int, key: str) -> list[str]:
    """The cache states the access log of gateway A recorded for GETs of ``cache/key`` since ``mark``."""
    out = []
    for line in cl.gateway.log_since(mark).splitlines():
        fields = line.split("\t")
        if len(fields) >= 8 and fields[1] == "GetObject" and fields[3] == key:
            out.append(fields[-1])
    return out


def get(s3: Any, key: str, bucket: str = "cache", **kw: Any) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()
    return body


class Answer:
    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content


def http_get(url: str, headers: dict[str, str] | None = None) -> Answer:
    """An anonymous GET."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return Answer(r.status, r.headers, r.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers, err.read())


def metric(endpoint: str, name: str, tier: str | None = None) -> float:
    with urllib.request.urlopen(f"{endpoint}/_leofs_adm/metrics", timeout=10) as r:
        text = r.read().decode()
    label = f'{{tier="{tier}"}}' if tier else ""
    match = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name}{label} not in the metrics"
    return float(match.group(1))


def test_hits_and_misses_per_tier(cl: Cluster) -> None:
    small, medium = os.urandom(KIB), os.urandom(200 * KIB)
    cl.a.put_object(Bucket="cache", Key="small", Body=small)
    cl.a.put_object(Bucket="cache", Key="medium", Body=medium)
    hits_before = metric(cl.c.endpoint, "leofs_gateway_cache_hits_total", "mem")
    mark = cl.gateway.log_mark()
    for _ in range(2):
        assert get(cl.a, "small") == small
        assert get(cl.a, "medium") == medium
    cl.c.wait_until(lambda: len(states(cl, mark, "medium")) == 2, what="access log lines")
    assert states(cl, mark, "small") == ["hit:mem", "hit:mem"]  # written through on PUT
    assert states(cl, mark, "medium") == ["miss", "hit:disk"]
    assert metric(cl.c.endpoint, "leofs_gateway_cache_hits_total", "mem") >= hits_before + 1
    assert metric(cl.c.endpoint, "leofs_gateway_cache_entries", "disk") >= 1
    # the disk tier's files are private
    files = [p for p in cl.disk.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o077 == 0 for p in files)


def test_ram_tier_evicts_the_least_recently_used(cl: Cluster) -> None:
    bodies = {f"lru{i}": os.urandom(60 * KIB) for i in range(5)}
    for key, body in bodies.items():  # through B: not written through into A's cache
        cl.b.put_object(Bucket="cache", Key=key, Body=body)
    mark = cl.gateway.log_mark()
    for key in ("lru0", "lru1", "lru2", "lru3"):
        assert get(cl.a, key) == bodies[key]  # misses: four fill the RAM tier
    assert get(cl.a, "lru0") == bodies["lru0"]  # hit: now the most recently used
    assert get(cl.a, "lru4") == bodies["lru4"]  # miss: evicts lru1, the least recently used
    assert get(cl.a, "lru0") == bodies["lru0"]  # still there
    assert get(cl.a, "lru1") == bodies["lru1"]  # evicted: a miss
    cl.c.wait_until(lambda: len(states(cl, mark, "lru1")) == 2, what="access log lines")
    assert states(cl, mark, "lru0") == ["miss", "hit:mem", "hit:mem"]
    assert states(cl, mark, "lru1") == ["miss", "miss"]
    assert states(cl, mark, "lru4") == ["miss"]
    assert metric(cl.c.endpoint, "leofs_gateway_cache_evictions_total", "mem") >= 1


def test_overwrite_and_delete_through_another_gateway_are_seen_at_once(cl: Cluster) -> None:
    for size in (KIB, 200 * KIB):  # RAM tier, disk tier
        key = f"shared-{size}"
        for round_ in range(5):
            body = os.urandom(size)
            cl.b.put_object(Bucket="cache", Key=key, Body=body)
            assert get(cl.a, key) == body, round_  # the cached older version is never served
            assert get(cl.a, key) == body
        cl.b.delete_object(Bucket="cache", Key=key)
        with pytest.raises(ClientError) as err:
            cl.a.get_object(Bucket="cache", Key=key)
        assert err.value.response["Error"]["Code"] == "NoSuchKey"


def test_writes_through_this_gateway_replace_the_entry(cl: Cluster) -> None:
    cl.a.put_object(Bucket="cache", Key="own", Body=b"one")
    assert get(cl.a, "own") == b"one"
    cl.a.put_object(Bucket="cache", Key="own", Body=b"two")
    mark = cl.gateway.log_mark()
    assert get(cl.a, "own") == b"two"  # written through: a hit, validated like any other
    cl.c.wait_until(lambda: len(states(cl, mark, "own")) == 1, what="access log lines")
    assert states(cl, mark, "own") == ["hit:mem"]
    cl.a.copy_object(Bucket="cache", Key="own", CopySource={"Bucket": "cache", "Key": "small"})
    assert get(cl.a, "own") == get(cl.a, "small")
    cl.a.delete_object(Bucket="cache", Key="own")
    with pytest.raises(ClientError):
        cl.a.get_object(Bucket="cache", Key="own")


def test_ranges_and_parts_from_the_cache(cl: Cluster) -> None:
    small = os.urandom(40 * KIB)
    cl.a.put_object(Bucket="cache", Key="ranged", Body=small)
    big = os.urandom(8 * MIB)  # two chunks (5 MiB + 3 MiB): cached chunk by chunk on the disk tier
    cl.a.put_object(Bucket="cache", Key="big", Body=big)
    assert get(cl.a, "ranged") == small and get(cl.a, "big") == big
    mark = cl.gateway.log_mark()
    assert get(cl.a, "ranged", Range="bytes=100-199") == small[100:200]
    assert get(cl.a, "big", Range="bytes=5242000-5243999") == big[5242000:5244000]  # across the chunk border
    assert get(cl.a, "big", Range="bytes=-10") == big[-10:]
    assert get(cl.a, "big", PartNumber=1) == big
    assert get(cl.a, "big") == big
    cl.c.wait_until(lambda: len(states(cl, mark, "big")) == 4, what="access log lines")
    assert states(cl, mark, "ranged") == ["hit:mem"]
    assert states(cl, mark, "big") == ["hit:disk"] * 4
    # ACLs still apply to hits: an anonymous GET of the private cached object is refused
    assert http_get(f"{cl.c.endpoint}/cache/ranged").status_code == 403


def test_a_corrupt_disk_cache_file_is_a_miss(cl: Cluster) -> None:
    body = os.urandom(300 * KIB)
    cl.a.put_object(Bucket="cache", Key="fragile", Body=body)
    before = {p: p.stat().st_mtime_ns for p in cl.disk.rglob("*") if p.is_file()}
    assert get(cl.a, "fragile") == body
    new = [p for p in cl.disk.rglob("*") if p.is_file() and p not in before]
    assert len(new) == 1, new
    raw = bytearray(new[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the body
    new[0].write_bytes(bytes(raw))
    corrupt = metric(cl.c.endpoint, "leofs_gateway_cache_corrupt_files_total")
    mark = cl.gateway.log_mark()
    assert get(cl.a, "fragile") == body  # the damaged copy is never served
    with open(new[0], "r+b") as f:  # stored again; now cut short
        f.truncate(1000)
    assert get(cl.a, "fragile") == body
    assert get(cl.a, "fragile") == body
    cl.c.wait_until(lambda: len(states(cl, mark, "fragile")) == 3, what="access log lines")
    assert states(cl, mark, "fragile") == ["miss", "miss", "hit:disk"]
    assert metric(cl.c.endpoint, "leofs_gateway_cache_corrupt_files_total") == corrupt + 2


def test_concurrent_misses_fetch_once_and_all_get_the_object(cl: Cluster) -> None:
    body = os.urandom(2 * MIB)
    cl.a.put_object(Bucket="cache", Key="crowd", Body=body)
    s3s = [make_client(cl.c.endpoint) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda s3: get(s3, "crowd"), s3s))
    assert all(g == body for g in got)


def test_http_mode_ttl_and_purge(cl: Cluster) -> None:
    url = f"{cl.http_endpoint}/pub/page.html"
    cl.a.put_object(Bucket="pub", Key="page.html", Body=b"v1", ACL="public-read", ContentType="text/html")
    first = http_get(url)
    assert first.status_code == 200 and first.content == b"v1"
    assert first.headers["Cache-Control"] == "max-age=5" and first.headers["Age"] == "0"
    cl.a.put_object(Bucket="pub", Key="page.html", Body=b"v2", ACL="public-read", ContentType="text/html")
    cached = http_get(url)  # within the TTL: served without asking storage
    assert cached.content == b"v1" and "Age" in cached.headers
    assert http_get(url, {"Cache-Control": "no-cache"}).content == b"v2"
    cl.a.put_object(Bucket="pub", Key="page.html", Body=b"v3", ACL="public-read", ContentType="text/html")
    assert http_get(url).content == b"v2"
    result = cl.c.adm("purge-cache", "pub/page.html")
    assert any(r["ok"] and r["result"]["purged"] for r in result), result
    assert http_get(url).content == b"v3"
    cl.a.put_object(Bucket="pub", Key="page.html", Body=b"v4", ACL="public-read", ContentType="text/html")
    deadline = time.monotonic() + 30  # the TTL (5 s) ends: the new version appears
    while http_get(url).content != b"v4":
        assert time.monotonic() < deadline, "the http cache never expired"
        time.sleep(0.2)


def test_http_mode_caches_only_public_objects_under_its_prefixes(cl: Cluster) -> None:
    c = make_client(cl.http_endpoint)
    cl.a.put_object(Bucket="pub", Key="private.txt", Body=b"p1")  # the bucket is public-read, the object not
    assert get(c, "private.txt", bucket="pub") == b"p1"
    cl.a.put_object(Bucket="pub", Key="private.txt", Body=b"p2")
    assert get(c, "private.txt", bucket="pub") == b"p2"
    assert http_get(f"{cl.http_endpoint}/pub/private.txt").status_code == 403
    cl.a.put_object(Bucket="cache", Key="elsewhere", Body=b"e1", ACL="public-read")  # not under pub/
    assert http_get(f"{cl.http_endpoint}/cache/elsewhere").content == b"e1"
    cl.a.put_object(Bucket="cache", Key="elsewhere", Body=b"e2", ACL="public-read")
    answer = http_get(f"{cl.http_endpoint}/cache/elsewhere")
    assert answer.content == b"e2" and "Age" not in answer.headers


def test_a_killed_storage_node_never_makes_a_read_stale(cl: Cluster) -> None:
    bodies = {f"kill{i}": os.urandom(KIB if i % 2 else 100 * KIB) for i in range(6)}
    for key, body in bodies.items():
        cl.a.put_object(Bucket="cache", Key=key, Body=body)
        assert get(cl.a, key) == body  # cached on A
    victim = cl.c.storage["storage1"]
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    try:
        for key in bodies:  # overwritten through B while a replica is down (W=2 of the other two)
            bodies[key] = os.urandom(len(bodies[key]))
            cl.b.put_object(Bucket="cache", Key=key, Body=bodies[key])
        for key, body in bodies.items():
            try:
                assert get(cl.a, key) == body  # validated on the replicas still up
            except ClientError as err:  # or a clean refusal: never the old bytes
                assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        victim.start()
