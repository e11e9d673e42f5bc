"""Object versioning through boto3, against the embedded server and the 3-node cluster: bucket
versioning state, versions of PUT/Copy/Complete, delete markers, reads and deletes by version id,
ListObjectVersions paging, DeleteObjects with version ids, suspended buckets' null version."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.held import HeldPut


def _enable(s3: Any, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _versions(s3: Any, bucket: str, **kwargs: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) of every version, in listing order, all pages.

    The order is read from the XML itself: botocore splits versions and markers into two lists, and
    LastModified (milliseconds) cannot order two versions written in the same millisecond."""
    bodies: list[bytes] = []

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append(response_dict["body"])

    event = "before-parse.s3.ListObjectVersions"
    s3.meta.events.register(event, keep)
    try:
        for _ in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kwargs):
            pass
    finally:
        s3.meta.events.unregister(event, keep)
    out: list[tuple[str, str, bool, bool]] = []
    for body in bodies:
        root = ElementTree.fromstring(body)
        ns = {"s3": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
        url = root.findtext("s3:EncodingType" if ns else "EncodingType", namespaces=ns) == "url"
        for item in root:
            kind = item.tag.rsplit("}", 1)[-1]
            if kind not in ("Version", "DeleteMarker"):
                continue
            key, version_id, latest = (item.findtext(f"s3:{name}" if ns else name, namespaces=ns) or ""
                                       for name in ("Key", "VersionId", "IsLatest"))
            out.append((unquote_plus(key) if url else key, version_id, latest == "true", kind == "DeleteMarker"))
    return out


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_bucket_versioning_state(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    _enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    _enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
                                 MFA="123456 654321")
    assert _error(excinfo) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Bogus"})
    assert _error(excinfo) == ("MalformedXML", 400)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_versions_delete_markers_and_reads(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")  # the null version
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1)["ContentLength"] == 3
    assert _versions(s3, bucket) == [("k", v2, True, False), ("k", v1, False, False), ("k", "null", False, False)]

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k")
    assert _error(excinfo) == ("NoSuchKey", 404)
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert _error(excinfo) == ("MethodNotAllowed", 405)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:  # old versions and a delete marker are contents
        s3.delete_bucket(Bucket=bucket)
    assert _error(excinfo) == ("BucketNotEmpty", 409)
    assert _versions(s3, bucket)[0] == ("k", marker, True, True)
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v2)["Body"].read() == b"two"

    # removing the delete marker makes the newest version current again
    gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert gone["DeleteMarker"] is True and gone["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    # removing the current version for good: the previous one becomes current
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2)
    assert _error(excinfo) == ("NoSuchVersion", 404)
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert _versions(s3, bucket) == [("k", v1, True, False)]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId="not-a-version")
    assert _error(excinfo) == ("InvalidArgument", 400)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert _versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_copy_and_multipart_create_versions(s3: Any, bucket: str) -> None:
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"] not in (None, "null")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"
    # restoring an old version: a copy onto its own key
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"first"
    assert len(_versions(s3, bucket, Prefix="src")) == 3

    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p" * 1000)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["VersionId"] not in (None, "null")
    assert s3.head_object(Bucket=bucket, Key="mp")["VersionId"] == done["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="mp")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "mp",
                                                           "VersionId": deleted["VersionId"]})
    assert _error(excinfo) == ("InvalidRequest", 400)
    assert s3.get_object(Bucket=bucket, Key="mp", VersionId=done["VersionId"])["Body"].read() == b"p" * 1000


def test_object_acl_by_version(s3: Any, bucket: str) -> None:
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=v1, ACL="public-read")
    grants = s3.get_object_acl(Bucket=bucket, Key="k", VersionId=v1)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    current = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert not any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in current)


def test_list_object_versions_paging_prefix_delimiter(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/old", Body=b"x")
    _enable(s3, bucket)
    for key in ("a/1", "a/2", "b", "c"):
        for n in range(3):
            s3.put_object(Bucket=bucket, Key=key, Body=str(n).encode())
    s3.delete_object(Bucket=bucket, Key="b")
    everything = _versions(s3, bucket)
    assert len(everything) == 1 + 4 * 3 + 1
    assert [v for v in everything if v[2]] == [
        ("a/1", everything[0][1], True, False), ("a/2", everything[3][1], True, False),
        ("a/old", "null", True, False), ("b", everything[7][1], True, True), ("c", everything[11][1], True, False)]
    for page_size in (1, 2, 5):
        assert _versions(s3, bucket, PaginationConfig={"PageSize": page_size}) == everything
    assert _versions(s3, bucket, Prefix="a/") == everything[:7]
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/"]
    assert {v["Key"] for v in page["Versions"]} == {"b", "c"}
    first = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert first["IsTruncated"] and first["NextKeyMarker"] == "a/"
    rest = s3.list_object_versions(Bucket=bucket, Delimiter="/", KeyMarker="a/")
    assert "CommonPrefixes" not in rest and {v["Key"] for v in rest["Versions"]} == {"b", "c"}
    encoded = s3.list_object_versions(Bucket=bucket, Prefix="a/", EncodingType="url", MaxKeys=1)
    assert encoded["Versions"][0]["Key"] == "a/1"


def test_delete_objects_with_versions(s3: Any, bucket: str) -> None:
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="j", Body=b"1")
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v1}, {"Key": "j"}]})
    by_key = {d["Key"]: d for d in answer["Deleted"]}
    assert by_key["k"]["VersionId"] == v1 and "DeleteMarker" not in by_key["k"]
    assert by_key["j"]["DeleteMarker"] is True and by_key["j"]["DeleteMarkerVersionId"]
    marker = by_key["j"]["DeleteMarkerVersionId"]
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "j", "VersionId": marker}]})
    assert answer["Deleted"][0]["DeleteMarker"] is True
    assert s3.get_object(Bucket=bucket, Key="j")["Body"].read() == b"1"


def test_suspended_bucket_writes_the_null_version(s3: Any, bucket: str) -> None:
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["VersionId"]
    _enable(s3, bucket, "Suspended")
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"2").get("VersionId", "null") == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"3")
    assert [(v[1], v[2]) for v in _versions(s3, bucket)] == [("null", True), (v1, False)]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"3"
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert [(v[1], v[3]) for v in _versions(s3, bucket)] == [("null", True), (v1, False)]


def test_conditional_writes_judge_the_current_version(s3: Any, bucket: str) -> None:
    _enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"1")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert _error(excinfo) == ("PreconditionFailed", 412)
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfMatch=etag)
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"3", IfNoneMatch="*")  # a delete marker is no object
    assert len(_versions(s3, bucket)) == 4
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"p")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload=parts, IfNoneMatch="*")
    assert _error(excinfo) == ("PreconditionFailed", 412)
    assert len(_versions(s3, bucket)) == 4  # the refused Complete left no version behind
    s3.delete_object(Bucket=bucket, Key="k")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload=parts,
                                        IfNoneMatch="*")
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == done["VersionId"]


def test_racing_puts_keep_every_version(server: Any, s3: Any, bucket: str) -> None:
    """PUTs of one key released at once, round after round: every version is listed, and the
    current one is the newest listed (the current record is a compare-and-set the newest wins)."""
    _enable(s3, bucket)
    writers = 4
    clients = [make_client(server.endpoint) for _ in range(writers)]
    ids: list[str] = []
    for round_ in range(15):
        barrier = threading.Barrier(writers)

        def put(client: Any, body: bytes, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            ids.append(client.put_object(Bucket=bucket, Key="race", Body=body)["VersionId"])

        threads = [threading.Thread(target=put, args=(c, f"{round_}-{n}".encode())) for n, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        listed = _versions(s3, bucket)
        assert sorted(v[1] for v in listed) == sorted(ids) and len(ids) == writers * (round_ + 1)
        assert listed[0][2] and s3.head_object(Bucket=bucket, Key="race")["VersionId"] == listed[0][1], round_


def test_puts_racing_removals_of_the_current_version(server: Any, s3: Any, bucket: str) -> None:
    """New versions while another client removes whichever version is current: no acknowledged
    version goes missing, none removed comes back, and the current one is the newest listed."""
    _enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="hot", Body=b"seed")
    written: list[str] = []
    removed: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        client = make_client(server.endpoint)
        for n in range(15):
            written.append(client.put_object(Bucket=bucket, Key="hot", Body=str(n).encode())["VersionId"])
        stop.set()

    def remover() -> None:
        client = make_client(server.endpoint)
        while not stop.is_set():
            try:
                current = client.head_object(Bucket=bucket, Key="hot")["VersionId"]
            except ClientError:
                continue
            client.delete_object(Bucket=bucket, Key="hot", VersionId=current)
            removed.append(current)

    threads = [threading.Thread(target=writer), threading.Thread(target=remover)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    listed = _versions(s3, bucket)
    ids = [v[1] for v in listed]
    assert removed and not set(ids) & set(removed)
    assert set(written) - set(removed) <= set(ids)
    if listed:
        assert listed[0][2] and s3.head_object(Bucket=bucket, Key="hot")["VersionId"] == listed[0][1]


def test_versioned_put_in_flight_does_not_survive_delete_bucket(server: Any, s3: Any, bucket: str) -> None:
    """A versioned PUT that lands after its bucket was deleted takes its version back: the bucket
    created again under the name holds no version of it."""
    _enable(s3, bucket)
    held = HeldPut(server, f"/{bucket}/alice.txt", b"x" * 200_000)
    s3.delete_bucket(Bucket=bucket)
    held.release()
    status, raw = held.response()
    assert status == 404 and b"<Code>NoSuchBucket</Code>" in raw, raw[:400]
    s3.create_bucket(Bucket=bucket)
    _enable(s3, bucket)
    assert _versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)  # nothing of the old generation counts as contents


def test_puts_racing_delete_markers(server: Any, s3: Any, bucket: str) -> None:
    """A PUT and a DELETE (a delete marker) of one key released at once, round after round: plain
    reads always agree with the newest listed version (absent when it is a delete marker)."""
    _enable(s3, bucket)
    clients = [make_client(server.endpoint) for _ in range(2)]
    for round_ in range(15):
        barrier = threading.Barrier(2)

        def put(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            clients[0].put_object(Bucket=bucket, Key="k", Body=b"x")

        def delete(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            clients[1].delete_object(Bucket=bucket, Key="k")

        threads = [threading.Thread(target=put), threading.Thread(target=delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        newest = _versions(s3, bucket)[0]
        assert newest[2], round_  # the first listed is the one marked latest
        if newest[3]:
            with pytest.raises(ClientError) as excinfo:
                s3.head_object(Bucket=bucket, Key="k")
            assert _error(excinfo)[1] == 404, round_
        else:
            assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == newest[1], round_
