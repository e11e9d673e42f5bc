"""Bucket operations against a real server with boto3: create/list/head/delete, location, ACLs."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import create_user, request
from tests.support.servers import LeofsServer

_n = itertools.count()
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def _name(tag: str = "b") -> str:
    return f"{tag}-{os.getpid()}-{next(_n)}"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def user_b(server: LeofsServer) -> tuple[str, str]:
    return create_user(server, f"bucketsb{os.getpid()}")


@pytest.fixture
def s3b(server: LeofsServer, user_b: tuple[str, str]) -> Any:
    return make_client(server.endpoint, access_key=user_b[0], secret_key=user_b[1])


def test_create_list_head_delete(s3: Any) -> None:
    name = _name()
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["Location"] == f"/{name}"
    listed = s3.list_buckets()
    assert name in [b["Name"] for b in listed["Buckets"]]
    assert re.fullmatch("[0-9a-f]{64}", listed["Owner"]["ID"])  # the canonical id, not the access key
    assert all("CreationDate" in b for b in listed["Buckets"])
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _code(exc) == "NoSuchBucket"


def test_head_missing_bucket_has_no_body(server: LeofsServer) -> None:
    resp = request(server, "HEAD", f"/{_name('missing')}")
    assert resp.status == 404
    assert resp.body == b""
    assert resp.headers["x-amz-request-id"]


@pytest.mark.parametrize("bad", [
    "ab", "a" * 64, "UpperCase", "under_score", "-dash-first", "dash-last-", "two..dots", "192.168.5.4",
    "xn--punycode", "name-s3alias", "sthree-name", "name--ol-s3",
])
def test_invalid_bucket_names(s3: Any, bad: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bad)
    assert _code(exc) == "InvalidBucketName"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_valid_edge_names(s3: Any) -> None:
    for name in ("abc-" + str(os.getpid()), "a.b-" + str(os.getpid()), ("x" * 50 + str(os.getpid()))[:63]):
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)
        s3.delete_bucket(Bucket=name)


def test_location_constraint(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-central-1"
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-central-1"
    default = _name()
    s3.create_bucket(Bucket=default)
    assert s3.get_bucket_location(Bucket=default)["LocationConstraint"] is None


def test_already_owned_and_already_exists(s3: Any, s3b: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert _code(exc) == "BucketAlreadyOwnedByYou"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as exc:
        s3b.create_bucket(Bucket=name)
    assert _code(exc) == "BucketAlreadyExists"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert name not in [b["Name"] for b in s3b.list_buckets()["Buckets"]]


def test_bucket_not_empty(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert _code(exc) == "BucketNotEmpty"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    s3.delete_object(Bucket=bucket, Key="k")
    # uploads in progress alone do not keep it: DeleteBucket aborts them (as AWS does, issue 14)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)
    assert _code(exc) == "NoSuchBucket"


def test_recreate_after_delete_is_empty(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a", Body=b"1")
    s3.delete_object(Bucket=name, Key="a")
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0


def _grants(acl: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for g in acl["Grants"]:
        who = g["Grantee"].get("URI") or g["Grantee"].get("ID")
        out.add((who, g["Permission"]))
    return out


@pytest.mark.parametrize("canned,expected", [
    ("private", set()),
    ("public-read", {(ALL_USERS, "READ")}),
    ("public-read-write", {(ALL_USERS, "READ"), (ALL_USERS, "WRITE")}),
    ("authenticated-read", {(AUTH_USERS, "READ")}),
])
def test_bucket_canned_acls(s3: Any, bucket: str, canned: str, expected: set[tuple[str, str]]) -> None:
    s3.put_bucket_acl(Bucket=bucket, ACL=canned)
    acl = s3.get_bucket_acl(Bucket=bucket)
    root_id = s3.list_buckets()["Owner"]["ID"]
    assert acl["Owner"]["ID"] == root_id
    assert _grants(acl) == {(root_id, "FULL_CONTROL")} | expected


def test_bucket_acl_at_creation(s3: Any) -> None:
    name = _name()
    s3.create_bucket(Bucket=name, ACL="public-read")
    assert (ALL_USERS, "READ") in _grants(s3.get_bucket_acl(Bucket=name))


def test_bucket_acl_grants(s3: Any, s3b: Any, bucket: str, user_b: tuple[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    with pytest.raises(ClientError) as exc:
        s3b.list_objects_v2(Bucket=bucket)
    assert _code(exc) == "AccessDenied"
    # grant header
    root_id, b_id = s3.list_buckets()["Owner"]["ID"], s3b.list_buckets()["Owner"]["ID"]
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'id="{b_id}"', GrantFullControl=f'id="{root_id}"')
    assert (b_id, "READ") in _grants(s3.get_bucket_acl(Bucket=bucket))
    assert [o["Key"] for o in s3b.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    with pytest.raises(ClientError) as exc:  # bucket READ lists; reading k follows k's (private) ACL
        s3b.get_object(Bucket=bucket, Key="k")
    assert _code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        s3b.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert _code(exc) == "AccessDenied"
    # AccessControlPolicy document
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy["Grants"] = [
        {"Grantee": {"Type": "CanonicalUser", "ID": root_id}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "CanonicalUser", "ID": b_id}, "Permission": "WRITE"},
    ]
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={"Grants": policy["Grants"], "Owner": policy["Owner"]})
    assert _grants(s3.get_bucket_acl(Bucket=bucket)) == {(root_id, "FULL_CONTROL"), (b_id, "WRITE")}
    s3b.put_object(Bucket=bucket, Key="k2", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3b.list_objects_v2(Bucket=bucket)
    assert _code(exc) == "AccessDenied"
    # other users cannot read or change the ACL
    with pytest.raises(ClientError) as exc:
        s3b.get_bucket_acl(Bucket=bucket)
    assert _code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        s3b.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert _code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        s3b.delete_bucket(Bucket=bucket)
    assert _code(exc) == "AccessDenied"


def test_invalid_canned_acl(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=bucket, ACL="bogus-acl")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _code(exc) == "InvalidArgument"


def test_list_buckets_per_owner(s3: Any, s3b: Any) -> None:
    mine = _name()
    theirs = _name()
    s3.create_bucket(Bucket=mine)
    s3b.create_bucket(Bucket=theirs)
    root_names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    b_names = [b["Name"] for b in s3b.list_buckets()["Buckets"]]
    assert mine in root_names and theirs not in root_names
    assert theirs in b_names and mine not in b_names
    assert b_names == sorted(b_names)
    with pytest.raises(ClientError) as exc:
        s3b.head_bucket(Bucket=mine)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
