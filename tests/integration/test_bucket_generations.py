"""A bucket created again under a deleted bucket's name never sees the deleted bucket's objects.

The state under test is what a write leaves when its process dies between its record write and its
undo (``leofs.gateway.fence``): an object record of the deleted generation, under a name that now
belongs to a new bucket. It is made deterministically through the real sequence, with the server
stopped in between and the project's own ObjectStore opened by the test: the old bucket's records
are set aside (tombstoned), the old bucket is deleted through S3 (its fence records the deletion)
and created again, and the set-aside records are put back exactly as they were written.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

from leofs.gateway.keys import NS_OBJECT
from leofs.gateway.records import meta_encoder, object_meta_decoder
from leofs.storage.model import Entry
from leofs.storage.store import ObjectStore
from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer

MiB = 1024 * 1024
#: (key, body) of the deleted bucket; the large one is stored as chunks
OLD = {"inline.txt": b"alice's secret", "big.bin": bytes(range(256)) * (7 * MiB // 256), "dir1/x": b"x"}
Saved = tuple[bytes, bytes, bytes, int, int, bytes]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeofsServer]:
    """An embedded server of this module's own: the tests stop and start it. Replaced chunks are
    freed at once, so what gc frees shows up right away."""
    srv = LeofsServer(tmp_path_factory.mktemp("generations") / "data", extra_args=["--free-grace", "0"])
    srv.start()
    yield srv
    srv.stop()


def _error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    return str(response["Error"]["Code"]), int(response["ResponseMetadata"]["HTTPStatusCode"])


def _adm(server: LeofsServer, *args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret",
                          CLUSTER_SECRET, "--json", *args], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def _active_entries(server: LeofsServer) -> int:
    return sum(c["active_count"] for c in _adm(server, "du", "embedded"))


async def set_aside(storage: Path, prefix: bytes) -> list[Saved]:
    """Tombstone the object records under ``prefix`` in a stopped server's store; answers them."""
    store = await ObjectStore.open(storage)
    try:
        saved: list[Saved] = []
        for entry in store.scan(NS_OBJECT, prefix):
            assert isinstance(entry, Entry)
            saved.append((entry.key, await store.read(entry), entry.meta, entry.cnumber, entry.csize, entry.md5))
            await store.delete(NS_OBJECT, entry.key)
        return saved
    finally:
        await store.close()


async def put_back(storage: Path, saved: list[Saved], legacy: set[bytes] | frozenset[bytes] = frozenset()) -> None:
    """Write the records :func:`set_aside` answered back, as they were (``legacy``: keys to write
    with generation 0)."""
    store = await ObjectStore.open(storage)
    try:
        for key, data, meta, cnumber, csize, md5 in saved:
            if key in legacy:  # as written before generations were recorded
                meta = meta_encoder.encode(msgspec.structs.replace(object_meta_decoder.decode(meta), generation=0.0))
            await store.put(NS_OBJECT, key, data, meta=meta, cnumber=cnumber, csize=csize, md5=md5 or None)
    finally:
        await store.close()


def stale_bucket(server: LeofsServer, s3: Any, name: str, objects: dict[str, bytes],
                 legacy: frozenset[str] = frozenset()) -> None:
    """Bucket ``name`` created again after a deletion that left ``objects`` of the old bucket behind
    (``legacy``: of those, keys whose record predates generations)."""
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    storage = server.data_dir / "storage"
    server.stop()
    saved = asyncio.run(set_aside(storage, f"{name}/".encode()))
    assert len(saved) == len(objects)
    server.start()
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    server.stop()
    asyncio.run(put_back(storage, saved, {f"{name}/{k}".encode() for k in legacy}))
    server.start()


def test_reads_do_not_see_a_deleted_generation(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    stale_bucket(server, s3, "gen-reads", {**OLD, "legacy.txt": b"from before generations"},
                 legacy=frozenset({"legacy.txt"}))
    for key in OLD:
        assert _error(lambda k=key: s3.get_object(Bucket="gen-reads", Key=k)) == ("NoSuchKey", 404)
        assert _error(lambda k=key: s3.head_object(Bucket="gen-reads", Key=k))[1] == 404
        assert _error(lambda k=key: s3.get_object_acl(Bucket="gen-reads", Key=k)) == ("NoSuchKey", 404)
        assert _error(lambda k=key: s3.put_object_acl(Bucket="gen-reads", Key=k, ACL="public-read")) == (
            "NoSuchKey", 404)
        assert _error(lambda k=key: s3.get_object_attributes(Bucket="gen-reads", Key=k,
                                                             ObjectAttributes=["ETag"])) == ("NoSuchKey", 404)
        assert _error(lambda k=key: s3.copy_object(Bucket="gen-reads", Key="copy",
                                                   CopySource={"Bucket": "gen-reads", "Key": k})) == (
            "NoSuchKey", 404)
    # a record from before generations were recorded belongs to every generation
    assert s3.get_object(Bucket="gen-reads", Key="legacy.txt")["Body"].read() == b"from before generations"
    # the new bucket's own objects read as usual, also where an old record was overwritten
    s3.put_object(Bucket="gen-reads", Key="inline.txt", Body=b"bob's")
    assert s3.get_object(Bucket="gen-reads", Key="inline.txt")["Body"].read() == b"bob's"


def test_conditions_do_not_see_a_deleted_generation(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    stale_bucket(server, s3, "gen-cond", OLD)
    # If-None-Match: * is not blocked by an old record, on PUT nor on Complete
    s3.put_object(Bucket="gen-cond", Key="inline.txt", Body=b"new", IfNoneMatch="*")
    assert s3.get_object(Bucket="gen-cond", Key="inline.txt")["Body"].read() == b"new"
    upload_id = s3.create_multipart_upload(Bucket="gen-cond", Key="big.bin")["UploadId"]
    etag = s3.upload_part(Bucket="gen-cond", Key="big.bin", UploadId=upload_id, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket="gen-cond", Key="big.bin", UploadId=upload_id, IfNoneMatch="*",
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket="gen-cond", Key="big.bin")["Body"].read() == b"part"


def test_old_etag_does_not_satisfy_if_match(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    # the old record's ETag: the MD5 of its body, as for any object with that body
    old_etag = s3.put_object(Bucket=_fresh(s3, "gen-etag-probe"), Key="k", Body=OLD["inline.txt"])["ETag"]
    stale_bucket(server, s3, "gen-etag", {"inline.txt": OLD["inline.txt"]})
    assert _error(lambda: s3.put_object(Bucket="gen-etag", Key="inline.txt", Body=b"new", IfMatch=old_etag)) == (
        "NoSuchKey", 404)
    assert _error(lambda: s3.get_object(Bucket="gen-etag", Key="inline.txt")) == ("NoSuchKey", 404)


def _fresh(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


def _pages_v1(s3: Any, bucket: str, **args: Any) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    prefixes: list[str] = []
    marker = ""
    for _ in range(50):
        page = s3.list_objects(Bucket=bucket, MaxKeys=1, Marker=marker, **args)
        keys += [c["Key"] for c in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            return keys, prefixes
        assert page["NextMarker"] > marker
        marker = page["NextMarker"]
    raise AssertionError("listing does not end")


def _pages_v2(s3: Any, bucket: str, **args: Any) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    prefixes: list[str] = []
    token: dict[str, str] = {}
    for _ in range(50):
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=1, **token, **args)
        keys += [c["Key"] for c in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        if not page["IsTruncated"]:
            return keys, prefixes
        token = {"ContinuationToken": page["NextContinuationToken"]}
    raise AssertionError("listing does not end")


def _pages_versions(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    marker = ""
    for _ in range(50):
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1, KeyMarker=marker)
        keys += [v["Key"] for v in page.get("Versions", [])]
        if not page["IsTruncated"]:
            return keys
        marker = page["NextKeyMarker"]
    raise AssertionError("listing does not end")


def test_listings_skip_a_deleted_generation_and_page_right(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    stale_bucket(server, s3, "gen-list", {"k1": b"old", "k3": b"old", "k5": b"old", "dir1/x": b"old",
                                          "dir2/old": b"old"})
    for key in ("k2", "k4", "dir2/new"):
        s3.put_object(Bucket="gen-list", Key=key, Body=b"new")
    assert _pages_v1(s3, "gen-list") == (["dir2/new", "k2", "k4"], [])
    assert _pages_v2(s3, "gen-list") == (["dir2/new", "k2", "k4"], [])
    assert _pages_versions(s3, "gen-list") == ["dir2/new", "k2", "k4"]
    # a common prefix whose keys are all of the deleted generation is not there
    assert _pages_v1(s3, "gen-list", Delimiter="/") == (["k2", "k4"], ["dir2/"])
    assert _pages_v2(s3, "gen-list", Delimiter="/") == (["k2", "k4"], ["dir2/"])
    whole = s3.list_objects_v2(Bucket="gen-list", Delimiter="/")
    assert [c["Key"] for c in whole["Contents"]] == ["k2", "k4"] and whole["KeyCount"] == 3
    assert [p["Prefix"] for p in whole["CommonPrefixes"]] == ["dir2/"]


def test_delete_bucket_and_gc_ignore_then_collect_a_deleted_generation(tmp_path: Path) -> None:
    server = LeofsServer(tmp_path / "data", extra_args=["--free-grace", "0"])  # gc sees only this test's records
    server.start()
    try:
        _delete_bucket_and_gc(server)
    finally:
        server.stop()


def _delete_bucket_and_gc(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    stale_bucket(server, s3, "gen-gc", OLD)
    # the new bucket is empty: its owner can delete it (and create it once more)
    s3.delete_bucket(Bucket="gen-gc")
    s3.create_bucket(Bucket="gen-gc")
    s3.put_object(Bucket="gen-gc", Key="inline.txt", Body=b"kept")  # replaces one old record
    before = _active_entries(server)
    report = _adm(server, "gc", "--grace", "0")
    assert report["stale_objects"] == 2, report  # big.bin and dir1/x; inline.txt is the new bucket's now
    # the records and the two chunks of big.bin are gone
    deadline = time.monotonic() + 60
    while _active_entries(server) != before - 4:
        assert time.monotonic() < deadline, (before, _active_entries(server))
        time.sleep(0.2)
    assert _adm(server, "gc", "--grace", "0")["stale_objects"] == 0
    assert s3.get_object(Bucket="gen-gc", Key="inline.txt")["Body"].read() == b"kept"
    s3.delete_object(Bucket="gen-gc", Key="inline.txt")
    s3.delete_bucket(Bucket="gen-gc")
