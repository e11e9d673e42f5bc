"""Object reads follow the object's ACL, not the bucket's (issue 10, defect 11), and a caller who may
not list a bucket cannot tell a missing key from an existing one (defect 6): both are 403."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import create_user, request
from tests.support.servers import LeofsServer


@pytest.fixture(scope="module")
def other(server: LeofsServer) -> tuple[str, str]:
    return create_user(server, f"access{os.getpid()}")


@pytest.fixture
def s3b(server: LeofsServer, other: tuple[str, str]) -> Any:
    return make_client(server.endpoint, access_key=other[0], secret_key=other[1])


def _status(call: Any) -> int:
    try:
        call()
    except ClientError as err:
        return int(err.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def _reads(server: LeofsServer, s3b: Any, bucket: str, key: str) -> dict[str, int]:
    """Status of every object read, anonymous and as another user."""
    out = {method + suffix: request(server, method, f"/{bucket}/{key}{suffix}", sign=False).status
           for method in ("GET", "HEAD") for suffix in ("", "?acl", "?attributes") if method == "GET" or not suffix}
    out["b:get"] = _status(lambda: s3b.get_object(Bucket=bucket, Key=key))
    out["b:head"] = _status(lambda: s3b.head_object(Bucket=bucket, Key=key))
    out["b:acl"] = _status(lambda: s3b.get_object_acl(Bucket=bucket, Key=key))
    out["b:attributes"] = _status(
        lambda: s3b.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ETag"]))
    return out


def test_no_key_existence_oracle_without_list_permission(server: LeofsServer, s3: Any, s3b: Any,
                                                         bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="exists", Body=b"x")
    existing, missing = _reads(server, s3b, bucket, "exists"), _reads(server, s3b, bucket, "missing")
    assert existing == missing
    assert set(missing.values()) == {403}
    resp = request(server, "GET", f"/{bucket}/missing", sign=False)
    assert resp.code == "AccessDenied"
    # copying from it: the same 403 for both
    own = bucket + "-b"
    s3b.create_bucket(Bucket=own)
    for key in ("exists", "missing"):
        assert _status(lambda k=key: s3b.copy_object(Bucket=own, Key="c", CopySource=f"{bucket}/{k}")) == 403
    # the owner, and whoever may list the bucket, learn that a key is missing
    assert _status(lambda: s3.get_object(Bucket=bucket, Key="missing")) == 404
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    resp = request(server, "GET", f"/{bucket}/missing", sign=False)
    assert (resp.status, resp.code) == (404, "NoSuchKey")
    assert _status(lambda: s3b.head_object(Bucket=bucket, Key="missing")) == 404
    assert _status(lambda: s3b.copy_object(Bucket=own, Key="c", CopySource=f"{bucket}/missing")) == 404


def test_bucket_read_does_not_open_a_private_object(server: LeofsServer, s3: Any, s3b: Any, bucket: str) -> None:
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private", Body=b"mine", ACL="private")
    s3.put_object(Bucket=bucket, Key="public", Body=b"ours", ACL="public-read")
    assert set(_reads(server, s3b, bucket, "private").values()) == {403}
    resp = request(server, "GET", f"/{bucket}/public", sign=False)
    assert (resp.status, resp.body) == (200, b"ours")
    assert s3b.get_object(Bucket=bucket, Key="public")["Body"].read() == b"ours"
    # listing is what bucket READ allows
    keys = [o["Key"] for o in s3b.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["private", "public"]
    # nor can the private object be copied out by someone with bucket READ
    own = bucket + "-b"
    s3b.create_bucket(Bucket=own)
    assert _status(lambda: s3b.copy_object(Bucket=own, Key="c", CopySource=f"{bucket}/private")) == 403
    assert s3b.copy_object(Bucket=own, Key="c", CopySource=f"{bucket}/public")["CopyObjectResult"]["ETag"]
    # authenticated-read on the bucket: the same
    s3.put_bucket_acl(Bucket=bucket, ACL="authenticated-read")
    assert _status(lambda: s3b.get_object(Bucket=bucket, Key="private")) == 403
    # bucket READ_ACP does not give the object's ACL either
    owner_id = s3.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]
    s3.put_bucket_acl(Bucket=bucket, GrantReadACP="uri=http://acs.amazonaws.com/groups/global/AllUsers",
                      GrantFullControl=f'id="{owner_id}"')
    assert request(server, "GET", f"/{bucket}/private?acl", sign=False).status == 403
    # the owner reads everything
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"mine"


def test_public_object_in_a_private_bucket(server: LeofsServer, s3: Any, s3b: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared", Body=b"shared", ACL="public-read")
    resp = request(server, "GET", f"/{bucket}/shared", sign=False)
    assert (resp.status, resp.body) == (200, b"shared")
    assert s3b.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"shared"
    assert request(server, "GET", f"/{bucket}", sign=False).status == 403
