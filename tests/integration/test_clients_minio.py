"""minio-py against a real server (issue 3, and multipart for issue 4)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import os
import random
import urllib.request
from pathlib import Path

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

MiB = 1024 * 1024
_names = itertools.count()


@pytest.fixture
def mc(server: LeofsServer) -> Minio:
    return Minio(f"{server.host}:{server.port}", access_key=ROOT_ACCESS_KEY, secret_key=ROOT_SECRET_KEY,
                 secure=False, region="us-east-1")


@pytest.fixture
def mbucket(mc: Minio) -> str:
    name = f"minio-{os.getpid()}-{next(_names)}"
    mc.make_bucket(name)
    return name


def test_buckets(mc: Minio, mbucket: str) -> None:
    assert mc.bucket_exists(mbucket)
    assert mbucket in [b.name for b in mc.list_buckets()]
    with pytest.raises(S3Error) as info:
        mc.make_bucket(mbucket)
    assert info.value.code == "BucketAlreadyOwnedByYou"
    assert not mc.bucket_exists(f"{mbucket}-missing")


def test_put_get_stat_small(mc: Minio, mbucket: str) -> None:
    data = b"minio small object"
    res = mc.put_object(mbucket, "dir/small.txt", io.BytesIO(data), len(data), content_type="text/plain",
                        metadata={"x-amz-meta-color": "red"})
    assert res.etag == hashlib.md5(data).hexdigest()
    stat = mc.stat_object(mbucket, "dir/small.txt")
    assert stat.size == len(data) and stat.etag == res.etag
    assert stat.content_type == "text/plain"
    assert stat.metadata["x-amz-meta-color"] == "red"
    resp = mc.get_object(mbucket, "dir/small.txt")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    resp = mc.get_object(mbucket, "dir/small.txt", offset=6, length=5)
    try:
        assert resp.read() == data[6:11]
    finally:
        resp.close()
        resp.release_conn()
    with pytest.raises(S3Error) as info:
        mc.stat_object(mbucket, "dir/missing")
    assert info.value.code in ("NoSuchKey", "ResponseCode:404")


def test_multipart_fput_fget_and_stream(mc: Minio, mbucket: str, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(13 * MiB + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    res = mc.fput_object(mbucket, "big.bin", str(src), part_size=5 * MiB)
    parts = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert res.etag == expected
    assert mc.stat_object(mbucket, "big.bin").etag == expected
    out = tmp_path / "big.out"
    mc.fget_object(mbucket, "big.bin", str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    # unknown length: minio streams 5 MiB parts
    res = mc.put_object(mbucket, "stream.bin", io.BytesIO(data), -1, part_size=5 * MiB)
    assert res.etag == expected
    resp = mc.get_object(mbucket, "stream.bin", offset=5 * MiB - 3, length=10)
    try:
        assert resp.read() == data[5 * MiB - 3 : 5 * MiB + 7]
    finally:
        resp.close()
        resp.release_conn()


def test_list_objects(mc: Minio, mbucket: str) -> None:
    keys = ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "d e/4.txt", "z"]
    for key in keys:
        mc.put_object(mbucket, key, io.BytesIO(key.encode()), len(key))
    assert [o.object_name for o in mc.list_objects(mbucket, recursive=True)] == keys
    # minio-py yields a page's objects before its common prefixes
    top = sorted(mc.list_objects(mbucket), key=lambda o: o.object_name)
    assert [o.object_name for o in top] == ["a.txt", "b/", "d e/", "z"]
    assert [o.is_dir for o in top] == [False, True, True, False]
    assert sorted(o.object_name for o in mc.list_objects(mbucket, prefix="b/")) == ["b/1.txt", "b/2.txt", "b/c/"]
    assert [o.object_name for o in mc.list_objects(mbucket, prefix="b/", recursive=True, start_after="b/1.txt")] \
        == ["b/2.txt", "b/c/3.txt"]
    v1 = [o.object_name for o in mc.list_objects(mbucket, recursive=True, use_api_v1=True)]
    assert v1 == keys
    sizes = {o.object_name: o.size for o in mc.list_objects(mbucket, recursive=True)}
    assert sizes == {k: len(k) for k in keys}


def test_remove_objects(mc: Minio, mbucket: str) -> None:
    keys = [f"rm/{i:03d}" for i in range(30)]
    for key in keys:
        mc.put_object(mbucket, key, io.BytesIO(b"x"), 1)
    errors = list(mc.remove_objects(mbucket, [DeleteObject(k) for k in [*keys[:20], "rm/never-existed"]]))
    assert errors == []
    assert [o.object_name for o in mc.list_objects(mbucket, recursive=True)] == keys[20:]
    mc.remove_object(mbucket, keys[20])
    assert len(list(mc.list_objects(mbucket, recursive=True))) == 9
    assert list(mc.remove_objects(mbucket, [DeleteObject(k) for k in keys[21:]])) == []
    mc.remove_bucket(mbucket)
    assert not mc.bucket_exists(mbucket)


def test_presigned_get(mc: Minio, mbucket: str) -> None:
    data = random.Random(2).randbytes(100_000)
    mc.put_object(mbucket, "pre/signed file.bin", io.BytesIO(data), len(data))
    url = mc.presigned_get_object(mbucket, "pre/signed file.bin", expires=dt.timedelta(minutes=10))
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == data
    url = mc.presigned_get_object(mbucket, "pre/signed file.bin", expires=dt.timedelta(minutes=10),
                                  response_headers={"response-content-type": "application/x-test"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "application/x-test"
        assert resp.read() == data
    put_url = mc.presigned_put_object(mbucket, "pre/put.bin", expires=dt.timedelta(minutes=10))
    req = urllib.request.Request(put_url, data=b"put via presigned url", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    got = mc.get_object(mbucket, "pre/put.bin")
    try:
        assert got.read() == b"put via presigned url"
    finally:
        got.close()
        got.release_conn()
