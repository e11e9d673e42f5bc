"""Owner and grantee ids in S3 answers are users' canonical ids (64 hex), never their access keys,
and grants name users by canonical id (issue 10: canonical user ids)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import create_user, request
from tests.support.servers import ROOT_ACCESS_KEY, LeofsServer

HEX64 = re.compile("[0-9a-f]{64}")


@pytest.fixture(scope="module")
def carol(server: LeofsServer) -> tuple[str, str]:
    return create_user(server, f"carol{os.getpid()}")


@pytest.fixture
def s3c(server: LeofsServer, carol: tuple[str, str]) -> Any:
    return make_client(server.endpoint, access_key=carol[0], secret_key=carol[1])


def test_answers_show_canonical_ids_only(server: LeofsServer, s3: Any, bucket: str, carol: tuple[str, str],
                                         s3c: Any) -> None:
    root_id = s3.list_buckets()["Owner"]["ID"]
    carol_id = s3c.list_buckets()["Owner"]["ID"]
    assert HEX64.fullmatch(root_id) and HEX64.fullmatch(carol_id) and root_id != carol_id
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f'id="{carol_id}"', GrantFullControl=f'id="{root_id}"')
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"p")
    answers = {
        "ListBuckets": request(server, "GET", "/"),
        "GetBucketAcl": request(server, "GET", f"/{bucket}?acl"),
        "GetObjectAcl": request(server, "GET", f"/{bucket}/k?acl"),
        "ListObjects": request(server, "GET", f"/{bucket}"),
        "ListObjectsV2": request(server, "GET", f"/{bucket}?list-type=2&fetch-owner=true"),
        "ListParts": request(server, "GET", f"/{bucket}/mp?uploadId={upload_id}"),
        "ListMultipartUploads": request(server, "GET", f"/{bucket}?uploads"),
    }
    for name, resp in answers.items():
        assert resp.status == 200, name
        assert ROOT_ACCESS_KEY.encode() not in resp.body and carol[0].encode() not in resp.body, name
        assert root_id.encode() in resp.body, name
    assert carol_id.encode() in answers["GetObjectAcl"].body
    assert carol_id in {g["Grantee"].get("ID") for g in s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]}
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_grants_by_canonical_id(s3: Any, bucket: str, carol: tuple[str, str], s3c: Any) -> None:
    carol_id = s3c.list_buckets()["Owner"]["ID"]
    root_id = s3.list_buckets()["Owner"]["ID"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"for carol")
    with pytest.raises(ClientError):
        s3c.get_object(Bucket=bucket, Key="k")
    # a grant header naming the canonical id
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f'id="{carol_id}"')
    assert s3c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"for carol"
    # an AccessControlPolicy document naming it
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={
        "Owner": {"ID": root_id},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": root_id}, "Permission": "FULL_CONTROL"},
                   {"Grantee": {"Type": "CanonicalUser", "ID": carol_id}, "Permission": "WRITE"}]})
    s3c.put_object(Bucket=bucket, Key="from-carol", Body=b"c")
    # an access key is not an id
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f'id="{carol[0]}"')
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
