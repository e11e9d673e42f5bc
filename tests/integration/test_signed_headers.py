"""Unsigned x-amz-* headers are refused: a signature covers what the request does, so a header that
changes what it does (x-amz-copy-source, x-amz-acl, ...) must be signed (issue 10, defect 1)."""

from __future__ import annotations

import http.client
import os
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import request, signed_headers
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer

NOT_SIGNED = "There were headers present in the request which were not signed"


def _send(url: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None
          ) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _error(body: bytes) -> tuple[str, str, str]:
    root = ET.fromstring(body)
    return root.findtext("Code") or "", root.findtext("Message") or "", root.findtext("HeadersNotSigned") or ""


def _missing(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        return err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


@pytest.fixture
def secret(s3: Any, bucket: str) -> str:
    """A private object of the signer's: what the attacker wants to read."""
    private = f"private-{os.getpid()}-{bucket[-6:]}"
    s3.create_bucket(Bucket=private)
    s3.put_object(Bucket=private, Key="secret.txt", Body=b"top secret")
    return private


def test_presigned_put_cannot_become_a_public_copy(server: LeofsServer, s3: Any, bucket: str, secret: str) -> None:
    v4 = make_client(server.endpoint, signature_version="s3v4")
    url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "inbox/upload.bin"}, ExpiresIn=300)
    assert "X-Amz-SignedHeaders=host&" in url or url.endswith("X-Amz-SignedHeaders=host")
    status, body = _send(url, "PUT", b"", {"x-amz-copy-source": f"/{secret}/secret.txt", "x-amz-acl": "public-read"})
    assert status == 403
    assert _error(body) == ("AccessDenied", NOT_SIGNED, "x-amz-acl, x-amz-copy-source")
    assert _missing(s3, bucket, "inbox/upload.bin")
    # the source was not made public either
    assert request(server, "GET", f"/{secret}/secret.txt", sign=False).status == 403
    # the URL still does what it was signed for, and an unsigned x-amz-content-sha256 is exempt, as in S3
    assert _send(url, "PUT", b"upload", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})[0] == 200
    assert s3.get_object(Bucket=bucket, Key="inbox/upload.bin")["Body"].read() == b"upload"
    acl = s3.get_object_acl(Bucket=bucket, Key="inbox/upload.bin")
    assert all(g["Grantee"]["Type"] != "Group" for g in acl["Grants"])


def test_presigned_upload_part_cannot_become_a_copy(server: LeofsServer, s3: Any, bucket: str, secret: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    v4 = make_client(server.endpoint, signature_version="s3v4")
    url = v4.generate_presigned_url(
        "upload_part", Params={"Bucket": bucket, "Key": "mp", "UploadId": upload_id, "PartNumber": 1}, ExpiresIn=300)
    status, body = _send(url, "PUT", b"", {"x-amz-copy-source": f"/{secret}/secret.txt"})
    assert status == 403
    assert _error(body) == ("AccessDenied", NOT_SIGNED, "x-amz-copy-source")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []
    assert _send(url, "PUT", b"part one")[0] == 200
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]] == [1]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_header_signed_request_with_an_unsigned_amz_header(server: LeofsServer, s3: Any, bucket: str,
                                                           secret: str) -> None:
    path = f"/{bucket}/copied"
    headers = signed_headers(server, "PUT", path)
    resp = request(server, "PUT", path, sign=False,
                   headers={**headers, "x-amz-copy-source": f"/{secret}/secret.txt"})
    assert resp.status == 403
    assert _error(resp.body) == ("AccessDenied", NOT_SIGNED, "x-amz-copy-source")
    assert _missing(s3, bucket, "copied")
    headers = signed_headers(server, "PUT", path, body=b"mine")
    resp = request(server, "PUT", path, sign=False, body=b"mine",
                   headers={**headers, "x-amz-meta-added": "later", "X-Amz-Acl": "public-read"})
    assert resp.status == 403 and _error(resp.body)[2] == "x-amz-acl, x-amz-meta-added"
    assert _missing(s3, bucket, "copied")
    # signed, the same headers are fine
    resp = request(server, "PUT", path, body=b"mine", headers={"x-amz-meta-added": "signed"})
    assert resp.status == 200
    assert s3.head_object(Bucket=bucket, Key="copied")["Metadata"] == {"added": "signed"}


class _NoHostQueryAuth(botocore.auth.S3SigV4QueryAuth):
    """botocore's presigner, signing no header at all (not even host)."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        signed = super().headers_to_sign(request)
        del signed["host"]
        return signed


class _NoHostHeaderAuth(botocore.auth.S3SigV4Auth):
    def headers_to_sign(self, request: AWSRequest) -> Any:
        signed = super().headers_to_sign(request)
        del signed["host"]
        return signed


def test_host_must_be_signed(server: LeofsServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="h", Body=b"h")
    creds = Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/h")
    _NoHostQueryAuth(creds, "s3", "us-east-1", expires=300).add_auth(req)
    assert "X-Amz-SignedHeaders=&" in req.url or "X-Amz-SignedHeaders=" in req.url
    status, body = _send(req.url)
    assert status == 403 and _error(body) == ("AccessDenied", NOT_SIGNED, "host")
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/h",
                     headers={"Host": f"{server.host}:{server.port}"})
    _NoHostHeaderAuth(creds, "s3", "us-east-1").add_auth(req)
    assert "host" not in req.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    status, body = _send(req.url, headers=dict(req.headers.items()))
    assert status == 403 and _error(body)[2] == "host"


def test_sigv2_presigned_cannot_be_extended(server: LeofsServer, s3: Any, bucket: str, secret: str) -> None:
    v2 = make_client(server.endpoint, signature_version="s3")
    url = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v2in"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    status, body = _send(url, "PUT", b"", {"x-amz-copy-source": f"/{secret}/secret.txt", "x-amz-acl": "public-read"})
    # SigV2 signs every x-amz-* header (CanonicalizedAmzHeaders): an added one breaks the signature
    assert status == 403 and _error(body)[0] == "SignatureDoesNotMatch"
    assert _missing(s3, bucket, "v2in")
    assert _send(url, "PUT", b"v2")[0] == 200
