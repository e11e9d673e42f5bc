"""Object and bucket tagging through boto3 (and raw signed HTTP for the header form) against the
embedded server and the 3-node cluster (issue 14): Put/Get/DeleteObjectTagging, ``x-amz-tagging``
on PutObject, CopyObject and CreateMultipartUpload, ``x-amz-tagging-count``, AWS's limits, and
Put/Get/DeleteBucketTagging."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.exceptions import ClientError

from tests.integration.s3_helpers import request
from tests.support.cluster import LeofsCluster

MiB = 1024 * 1024


def _error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _tagset(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_put_get_delete_object_tagging(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"body")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "x-amz-tagging-count" not in s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]
    before = s3.head_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset({"a": "1", "b c": "d/e=f", "empty": ""}))
    assert _tags(s3, bucket, "k") == {"a": "1", "b c": "d/e=f", "empty": ""}
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"body" and got["TagCount"] == 3
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    # the object itself is unchanged: same ETag, same Last-Modified
    assert (head["ETag"], head["LastModified"]) == (before["ETag"], before["LastModified"])
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset({"only": "one"}))  # replaces the set
    assert _tags(s3, bucket, "k") == {"only": "one"}
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert _tags(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"body"


def test_tagging_of_a_missing_object_or_bucket(s3: Any, bucket: str) -> None:
    assert _error(lambda: s3.get_object_tagging(Bucket=bucket, Key="nope")) == ("NoSuchKey", 404)
    assert _error(lambda: s3.put_object_tagging(Bucket=bucket, Key="nope", Tagging=_tagset({"a": "b"}))) == (
        "NoSuchKey", 404)
    assert _error(lambda: s3.delete_object_tagging(Bucket=bucket, Key="nope")) == ("NoSuchKey", 404)
    assert _error(lambda: s3.get_object_tagging(Bucket=bucket + "-none", Key="k"))[1] == 404


def test_tagging_of_a_large_object_keeps_its_body(s3: Any, bucket: str) -> None:
    body = bytes(range(256)) * (6 * MiB // 256)  # chunked: the record holds a manifest
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    s3.put_object_tagging(Bucket=bucket, Key="big", Tagging=_tagset({"size": "large"}))
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["TagCount"] == 1 and got["Body"].read() == body


def _embedded_only(server: Any) -> None:
    if isinstance(server, LeofsCluster):
        pytest.skip("request validation only: the cluster gateway runs the same handler code")


_BROKEN_LIMITS = [
    ({f"k{i}": "v" for i in range(11)}, "more than 10 tags"),
    ({"k" * 129: "v"}, "key over 128 characters"),
    ({"k": "v" * 257}, "value over 256 characters"),
    ({"aws:reserved": "v"}, "aws: prefix"),
    ({"bad<char": "v"}, "character outside the allowed set"),
]


def test_tag_limits_answer_invalid_tag(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for tags, why in _BROKEN_LIMITS:
        assert _error(lambda t=tags: s3.put_object_tagging(Bucket=bucket, Key="k",  # type: ignore[misc]
                                                           Tagging=_tagset(t))) == ("InvalidTag", 400), why
        assert _error(lambda t=tags: s3.put_object(Bucket=bucket, Key="k2", Body=b"x",  # type: ignore[misc]
                                                   Tagging=urlencode(t))) == ("InvalidTag", 400), why
    assert _tags(s3, bucket, "k") == {}


def test_limits_at_their_edges_are_accepted(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    tags = {f"k{i}": "v" for i in range(9)} | {"k" * 128: "\u00e9" * 256}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=urlencode(tags))
    assert _tags(s3, bucket, "k") == tags


def test_duplicate_keys_answer_invalid_tag(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "1"},
                                                                          {"Key": "a", "Value": "2"}]})
    assert exc.value.response["Error"]["Code"] == "InvalidTag"
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"y", Tagging="a=1&a=2")) == ("InvalidTag", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_malformed_tagging_documents(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for body in (b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", b"<Tagging/>", b"not xml"):
        resp = request(server, "PUT", f"/{bucket}/k?tagging", body=body)
        assert (resp.status, resp.code) == (400, "MalformedXML"), body


def test_tagging_header_on_put_object_url_encoded(server: Any, s3: Any, bucket: str) -> None:
    tags = {"project": "blue sky", "path": "a/b", "sym": "x=y+z", "\u00fcml": "\u00e9t\u00e9"}
    resp = request(server, "PUT", f"/{bucket}/k", body=b"data", headers={"x-amz-tagging": urlencode(tags)})
    assert resp.status == 200
    assert _tags(s3, bucket, "k") == tags
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "4"
    # a key without a value is a tag with an empty value
    request(server, "PUT", f"/{bucket}/k2", body=b"data", headers={"x-amz-tagging": "solo"})
    assert _tags(s3, bucket, "k2") == {"solo": ""}
    # percent escapes that are not UTF-8: refused, nothing written
    resp = request(server, "PUT", f"/{bucket}/k3", body=b"data", headers={"x-amz-tagging": "a=%FF"})
    assert resp.status == 400
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k3"))[1] == 404


def test_tagging_directive_on_copy(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1&b=2")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    assert _tags(s3, bucket, "copied") == {"a": "1", "b": "2"}  # COPY is the default
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="COPY", Tagging="ignored=1")
    assert _tags(s3, bucket, "copy2") == {"a": "1", "b": "2"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="c=3")
    assert _tags(s3, bucket, "replaced") == {"c": "3"}
    s3.copy_object(Bucket=bucket, Key="none", CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="REPLACE")
    assert _tags(s3, bucket, "none") == {}
    assert _error(lambda: s3.copy_object(Bucket=bucket, Key="bad", CopySource={"Bucket": bucket, "Key": "src"},
                                         TaggingDirective="MERGE"))[1] == 400


def test_tagging_header_on_multipart_upload_reaches_the_object(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=upload&n=2")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"b" * 100)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert _tags(s3, bucket, "mp") == {"stage": "upload", "n": "2"}
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=1)["TagCount"] == 2
    assert _error(lambda: s3.create_multipart_upload(Bucket=bucket, Key="mp2", Tagging="a=1&a=2")) == (
        "InvalidTag", 400)


def test_an_overwrite_drops_the_old_tags(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="old=1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    assert _tags(s3, bucket, "k") == {}


def test_tagging_never_clobbers_nor_resurrects_a_concurrent_write(s3: Any, bucket: str) -> None:
    """Tag changes race overwrites and deletes: every tag change lands on some version, none
    brings back a body that was replaced, and none brings back a deleted object."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def tagger() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset({"n": str(i)}))
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("NoSuchKey", "ConditionalRequestConflict"):
                    errors.append(exc)
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=tagger) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(15):
            s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() in (f"v{i}".encode(),)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v14"
    # a delete while tags are being changed: the object stays deleted
    stop.clear()
    threads = [threading.Thread(target=tagger) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        s3.delete_object(Bucket=bucket, Key="k")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404


def test_tagging_is_for_the_bucket_owner(server: Any, s3: Any, bucket: str) -> None:
    from tests.integration.conftest import make_client
    from tests.integration.s3_helpers import create_user

    access, secret = create_user(server, f"tagger-{bucket}")
    other = make_client(server.endpoint, access_key=access, secret_key=secret)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read-write")
    assert _error(lambda: other.get_object_tagging(Bucket=bucket, Key="k")) == ("AccessDenied", 403)
    assert _error(lambda: other.put_object_tagging(Bucket=bucket, Key="k", Tagging=_tagset({"a": "b"}))) == (
        "AccessDenied", 403)
    assert _error(lambda: other.put_bucket_tagging(Bucket=bucket, Tagging=_tagset({"a": "b"}))) == (
        "AccessDenied", 403)


def test_bucket_tagging(s3: Any, bucket: str) -> None:
    assert _error(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset({"team": "storage", "cost center": "42"}))
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert got == [{"Key": "team", "Value": "storage"}, {"Key": "cost center", "Value": "42"}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset({f"k{i}": "v" for i in range(50)}))  # 50 for buckets
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    assert _error(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset(
        {f"k{i}": "v" for i in range(51)}))) == ("InvalidTag", 400)
    s3.delete_bucket_tagging(Bucket=bucket)
    assert _error(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchTagSet", 404)
    # the bucket's objects are untouched by its tags, and its tags go with it
    s3.put_bucket_tagging(Bucket=bucket, Tagging=_tagset({"a": "b"}))
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert _error(lambda: s3.get_bucket_tagging(Bucket=bucket)) == ("NoSuchTagSet", 404)
    assert _error(lambda: s3.get_bucket_tagging(Bucket=bucket + "-none")) == ("NoSuchBucket", 404)


def test_tagging_with_awscli(server: Any, bucket: str, tmp_path: Any) -> None:
    """The aws CLI's tagging commands (against the embedded server: the CLI's start-up is slow and
    the cluster path is the same handlers, covered above)."""
    import json
    import subprocess

    from tests.integration.conftest import aws_env

    if isinstance(server, LeofsCluster):
        pytest.skip("aws CLI runs against the embedded server only")
    env = aws_env(server, tmp_path)
    base = ["aws", "--endpoint-url", server.endpoint, "s3api"]

    def aws(*args: str) -> Any:
        out = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else None

    (tmp_path / "f").write_bytes(b"cli")
    aws("put-object", "--bucket", bucket, "--key", "k", "--body", str(tmp_path / "f"),
        "--tagging", "a=1&b=" + quote("x y"))
    assert aws("get-object-tagging", "--bucket", bucket, "--key", "k")["TagSet"] == [
        {"Key": "a", "Value": "1"}, {"Key": "b", "Value": "x y"}]


def test_tagging_of_versions(s3: Any, bucket: str) -> None:
    """In a versioned bucket each version has its own tag set, addressed by versionId; tagging the
    current version changes that version only; a delete marker has none (405)."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"two", Tagging="gen=2")["VersionId"]
    got = s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v1)
    assert got["VersionId"] == v1 and got["TagSet"] == [{"Key": "gen", "Value": "1"}]
    assert _tags(s3, bucket, "v") == {"gen": "2"}
    put = s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=v1, Tagging=_tagset({"old": "yes"}))
    assert put["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v1)["TagSet"] == [{"Key": "old", "Value": "yes"}]
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v1)["TagCount"] == 1
    assert _tags(s3, bucket, "v") == {"gen": "2"}  # the current version is untouched
    # the current version, tagged without a version id: seen by id too, and the body is unchanged
    s3.put_object_tagging(Bucket=bucket, Key="v", Tagging=_tagset({"gen": "2", "hot": "1"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v2)["TagSet"] == [
        {"Key": "gen", "Value": "2"}, {"Key": "hot", "Value": "1"}]
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=v2)["TagCount"] == 2
    s3.delete_object_tagging(Bucket=bucket, Key="v", VersionId=v1)
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v1)["TagSet"] == []
    marker = s3.delete_object(Bucket=bucket, Key="v")["VersionId"]
    assert _error(lambda: s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=marker)) == ("MethodNotAllowed", 405)
    assert _error(lambda: s3.get_object_tagging(Bucket=bucket, Key="v"))[1] == 404
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v2)["TagSet"][1] == {"Key": "hot", "Value": "1"}
