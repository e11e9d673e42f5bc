"""An http-mode cache hit answers exactly what a miss answers (leofs.gateway.handlers.hit serves a
plain GET of a cached version from what it derived from that version once).

On a real cluster of one storage node and two gateways: H, in http mode with a long TTL, the access
log (which names each GET's cache state) and custom headers for ``hot/``; B, without a cache, for
writes that H does not see.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.support.cluster import LeofsCluster
from tests.support.servers import Service

pytestmark = pytest.mark.cluster

BUCKET = "hit"
VERSIONED = "hitv"
#: answer headers that differ between any two requests
_PER_REQUEST = frozenset({"date", "x-amz-request-id", "x-amz-id-2", "age"})
HEADERS_CONF = """
location hit/hot {
    add_header X-Origin leofs;
}
location hitv/hot {
    add_header X-Origin leofs;
}
"""


class Cluster:
    def __init__(self, c: LeofsCluster, b: Service) -> None:
        self.c = c
        self.h = make_client(c.endpoint)
        self.b = make_client(f"http://127.0.0.1:{b.ports[0]}")
        self.host = c.endpoint.removeprefix("http://")


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base: Path = tmp_path_factory.mktemp("cache-hit")
    conf = base / "headers.conf"
    conf.write_text(HEADERS_CONF)
    c = LeofsCluster(base, nodes=1, n=1, w=1, r=1, d=1,
                     gateway_args=("--cache-mode", "http", "--cache-http-ttl", "600", "--access-log",
                                   "--headers-config-file", str(conf)))  # fmt: skip
    try:
        c.start()
        b = c.add_gateway("gateway-b", ("--cache-ram", "0"))
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    cluster = Cluster(c, b)
    cluster.h.create_bucket(Bucket=BUCKET, ACL="public-read")
    cluster.h.create_bucket(Bucket=VERSIONED, ACL="public-read")
    cluster.h.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    yield cluster
    c.stop()


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def comparable(self) -> list[tuple[str, str]]:
        """Every header but those that differ per request, in a stable order."""
        return sorted((k.lower(), v) for k, v in self.headers if k.lower() not in _PER_REQUEST)


def raw_get(cl: Cluster, path: str, headers: dict[str, str] | None = None) -> Reply:
    """An anonymous GET, every answer header kept as sent."""
    conn = http.client.HTTPConnection(cl.host, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def signed_get(s3: Any, key: str, bucket: str = BUCKET, **kw: Any) -> Reply:
    """A SigV4 GET by boto3 (the bucket owner), with the answer's headers."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key, **kw)
        body = got["Body"].read()
        meta = got["ResponseMetadata"]
    except ClientError as err:
        body, meta = b"", err.response["ResponseMetadata"]
    return Reply(meta["HTTPStatusCode"], list(meta["HTTPHeaders"].items()), body)


def states(cl: Cluster, mark: int, key: str, count: int) -> list[str]:
    """The cache states of the first ``count`` GETs of ``key`` that H logged since ``mark``."""
    deadline = time.monotonic() + 30  # the line is written as the answer goes out
    while True:
        found = []
        for line in cl.c.gateway.log_since(mark).splitlines():
            fields = line.split("\t")
            if len(fields) >= 8 and fields[1] == "GetObject" and fields[3] == key:
                found.append(fields[-1])
        if len(found) >= count or time.monotonic() > deadline:
            return found[:count]
        time.sleep(0.05)


@pytest.mark.parametrize("bucket", [BUCKET, VERSIONED])
def test_a_hit_answers_the_headers_of_a_miss(cl: Cluster, bucket: str) -> None:
    key = "hot/page.html"
    body = os.urandom(3000)
    extra = {
        "ContentType": "text/html; charset=utf-8",
        "Metadata": {"colour": "blue"},
        "ContentLanguage": "en",
        "ContentDisposition": "inline",
        "Tagging": "a=1&b=2",
    }
    for get in (lambda: raw_get(cl, f"/{bucket}/{key}"), lambda: signed_get(cl.h, key, bucket)):
        cl.h.put_object(Bucket=bucket, Key=key, Body=body, ACL="public-read", **extra)  # drops the entry
        mark = cl.c.gateway.log_mark()
        miss, hit, again = get(), get(), get()
        assert states(cl, mark, key, 3) == ["miss", "hit:mem", "hit:mem"]
        assert miss.status == hit.status == again.status == 200
        assert miss.body == hit.body == again.body == body
        assert hit.comparable() == miss.comparable() == again.comparable()
        assert hit.header("ETag") == f'"{hashlib.md5(body).hexdigest()}"'
        assert hit.header("Content-Type") == "text/html; charset=utf-8"
        assert hit.header("x-amz-meta-colour") == "blue" and hit.header("x-amz-tagging-count") == "2"
        assert hit.header("Cache-Control") == "max-age=600" and hit.header("Age") is not None
        assert hit.header("X-Origin") == "leofs" and hit.header("Content-Length") == "3000"
        assert (hit.header("x-amz-version-id") is not None) == (bucket == VERSIONED)


def test_writes_through_the_gateway_are_served_at_once(cl: Cluster) -> None:
    key = "hot/doc"
    path = f"/{BUCKET}/{key}"
    versions = [(b"one", "text/plain", "1"), (b"second version", "application/json", "2")]
    for data, content_type, mark in versions:
        cl.h.put_object(
            Bucket=BUCKET, Key=key, Body=data, ACL="public-read", ContentType=content_type, Metadata={"v": mark}
        )
        for _ in range(3):  # a miss, then hits
            got = raw_get(cl, path)
            assert got.status == 200 and got.body == data
            assert got.header("ETag") == f'"{hashlib.md5(data).hexdigest()}"'
            assert got.header("Content-Type") == content_type and got.header("x-amz-meta-v") == mark
    cl.h.put_object_acl(Bucket=BUCKET, Key=key, ACL="private")  # the object's ACL no longer lets anyone read
    assert raw_get(cl, path).status == 403
    assert raw_get(cl, path).status == 403
    assert signed_get(cl.h, key).body == versions[-1][0]  # its owner still reads it
    cl.h.delete_object(Bucket=BUCKET, Key=key)
    assert raw_get(cl, path).status == 404  # the bucket is public-read: anyone may know it is gone
    assert signed_get(cl.h, key).status == 404


def test_ranges_conditions_and_overrides_of_a_cached_object(cl: Cluster) -> None:
    key = "hot/shaped"
    path = f"/{BUCKET}/{key}"
    body = os.urandom(4096)
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    asks: list[tuple[str, Any, int, bytes]] = [
        ("range", lambda: raw_get(cl, path, {"Range": "bytes=10-99"}), 206, body[10:100]),
        ("if-none-match", lambda: raw_get(cl, path, {"If-None-Match": etag}), 304, b""),
        ("if-match", lambda: raw_get(cl, path, {"If-Match": '"0123"'}), 412, b""),
        (
            "modified-since",
            lambda: raw_get(cl, path, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
            200,
            body,
        ),
        ("part", lambda: raw_get(cl, path + "?partNumber=1"), 200, body),
        ("override", lambda: signed_get(cl.h, key, ResponseContentType="text/x-override"), 200, body),
        ("anonymous override", lambda: raw_get(cl, path + "?response-content-type=text%2Fx-override"), 400, b""),
    ]
    for name, ask, status, expected in asks:
        cl.h.put_object(Bucket=BUCKET, Key=key, Body=body, ACL="public-read", ContentType="image/png")
        mark = cl.c.gateway.log_mark()
        miss, hit = ask(), ask()
        plain = raw_get(cl, path)  # a plain GET after it: nothing of the shaped answer stays behind
        if status != 400:  # refused before the object is looked up: the cache is not asked
            assert states(cl, mark, key, 3) == ["miss", "hit:mem", "hit:mem"], name
        assert miss.status == hit.status == status, name
        assert hit.comparable() == miss.comparable(), name
        if status < 300:
            assert miss.body == hit.body == expected, name
        assert plain.status == 200 and plain.body == body
        assert plain.header("Content-Type") == "image/png" and plain.header("Content-Range") is None
    shaped = signed_get(cl.h, key, ResponseContentType="text/x-override")
    assert shaped.header("Content-Type") == "text/x-override"
    assert raw_get(cl, path, {"Range": "bytes=10-99"}).header("Content-Range") == "bytes 10-99/4096"


def test_a_version_written_elsewhere_is_served_whole_until_purged(cl: Cluster) -> None:
    key = "hot/elsewhere"
    path = f"/{BUCKET}/{key}"
    cl.h.put_object(
        Bucket=BUCKET, Key=key, Body=b"first", ACL="public-read", ContentType="text/plain", Metadata={"gen": "1"}
    )
    assert raw_get(cl, path).body == b"first"
    cl.b.put_object(
        Bucket=BUCKET, Key=key, Body=b"second!", ACL="public-read", ContentType="image/gif", Metadata={"gen": "2"}
    )
    for _ in range(2):  # within the TTL H serves what it has: the first version, all of it
        got = raw_get(cl, path)
        assert got.body == b"first" and got.header("Content-Type") == "text/plain"
        assert got.header("x-amz-meta-gen") == "1" and got.header("ETag") == f'"{hashlib.md5(b"first").hexdigest()}"'
    result = cl.c.adm("purge-cache", f"{BUCKET}/{key}")
    assert any(r["ok"] and r["result"]["purged"] for r in result), result
    for _ in range(2):  # a miss, then a hit: the second version, all of it
        got = raw_get(cl, path)
        assert got.body == b"second!" and got.header("Content-Type") == "image/gif"
        assert got.header("x-amz-meta-gen") == "2"
        assert got.header("ETag") == f'"{hashlib.md5(b"second!").hexdigest()}"'
