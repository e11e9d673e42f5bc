"""Authentication and authorization against a real server: SigV4/SigV2 in headers and presigned,
clock skew, bad credentials, separate owners, anonymous access by canned ACL, virtual hosts."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import time
import urllib.parse
from email.utils import formatdate
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import adm, create_user, fake_now, request
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY, LeofsServer


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _fetch(url: str, method: str = "GET", body: bytes | None = None,
           headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _error_code(body: bytes) -> str:
    import xml.etree.ElementTree as ET

    return ET.fromstring(body).findtext("Code") or ""


@pytest.fixture(scope="module")
def user_b(server: LeofsServer) -> tuple[str, str]:
    return create_user(server, f"authb{os.getpid()}")


@pytest.fixture
def s3b(server: LeofsServer, user_b: tuple[str, str]) -> Any:
    return make_client(server.endpoint, access_key=user_b[0], secret_key=user_b[1])


def test_presigned_v4_get_put(server: LeofsServer, bucket: str) -> None:
    s3 = make_client(server.endpoint, signature_version="s3v4")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre signed+key"},
                                        ExpiresIn=604800)
    assert "X-Amz-Expires=604800" in put_url
    status, _ = _fetch(put_url, "PUT", b"presigned body")
    assert status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre signed+key"},
                                        ExpiresIn=60)
    status, body = _fetch(get_url)
    assert (status, body) == (200, b"presigned body")
    # tampering with the URL breaks the signature
    status, body = _fetch(get_url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"))
    assert status == 403 and _error_code(body) == "SignatureDoesNotMatch"
    # a presigned URL does not authorize another key
    other = get_url.replace("pre%20signed%2Bkey", "other")
    status, body = _fetch(other)
    assert status == 403 and _error_code(body) == "SignatureDoesNotMatch"


def test_presigned_v4_expiry(server: LeofsServer, bucket: str) -> None:
    s3 = make_client(server.endpoint, signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/e")
    with fake_now(past):  # botocore's pure-Python presigner, signing two hours ago
        botocore.auth.S3SigV4QueryAuth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY), "s3", "us-east-1",
                                       expires=3600).add_auth(req)
    assert past.strftime("X-Amz-Date=%Y%m%dT%H") in req.url
    status, body = _fetch(req.url)
    assert status == 403 and _error_code(body) == "AccessDenied"
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/e")
    with fake_now(past):
        botocore.auth.S3SigV4QueryAuth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY), "s3", "us-east-1",
                                       expires=3 * 3600).add_auth(req)
    assert _fetch(req.url) == (200, b"x")
    too_long = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=604801)
    status, body = _fetch(too_long)
    assert status == 403 and _error_code(body) == "AccessDenied", body  # issue 14: as for an expired URL


def test_sigv2_header_and_presigned(server: LeofsServer, bucket: str) -> None:
    v2 = make_client(server.endpoint, signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2 key/ü", Body=b"sigv2", Metadata={"m": "1"}, ContentType="text/plain")
    got = v2.get_object(Bucket=bucket, Key="v2 key/ü")
    assert got["Body"].read() == b"sigv2" and got["Metadata"] == {"m": "1"}
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket, Prefix="v2")["Contents"]] == ["v2 key/ü"]
    v2.put_object_acl(Bucket=bucket, Key="v2 key/ü", ACL="private")
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2 key/ü"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url and "Signature=" in url
    assert _fetch(url) == (200, b"sigv2")
    put = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "v2put"}, ExpiresIn=300)
    assert _fetch(put, "PUT", b"p")[0] == 200
    expired = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2 key/ü"}, ExpiresIn=-10)
    status, body = _fetch(expired)
    assert status == 403 and _error_code(body) == "AccessDenied"
    bad = make_client(server.endpoint, signature_version="s3", secret_key="wrong" * 8)
    with pytest.raises(ClientError) as exc:
        bad.get_object(Bucket=bucket, Key="v2put")
    assert _code(exc) == "SignatureDoesNotMatch"


def test_clock_skew(server: LeofsServer, bucket: str) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for delta in (dt.timedelta(minutes=-20), dt.timedelta(minutes=20)):
        resp = request(server, "GET", f"/{bucket}", when=now + delta)
        assert resp.status == 403 and resp.code == "RequestTimeTooSkewed", resp.body
    assert request(server, "GET", f"/{bucket}", when=now - dt.timedelta(minutes=10)).status == 200
    # SigV2 signed (correctly) with a Date 30 minutes old
    old_date = formatdate(time.time() - 1800, usegmt=True)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/")
    with mock.patch.object(botocore.auth.HmacV1Auth, "_get_date", lambda self: old_date):
        botocore.auth.HmacV1Auth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)).add_auth(req)
    assert req.headers["Date"] == old_date
    old = request(server, "GET", f"/{bucket}/", headers=dict(req.headers.items()), sign=False)
    assert old.status == 403 and old.code == "RequestTimeTooSkewed", old.body


def test_wrong_secret_and_unknown_key(server: LeofsServer, bucket: str) -> None:
    wrong = make_client(server.endpoint, secret_key="not-the-secret-000000000000000000000000")
    with pytest.raises(ClientError) as exc:
        wrong.list_objects_v2(Bucket=bucket)
    assert _code(exc) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        wrong.put_object(Bucket=bucket, Key="x", Body=b"x" * 1000)
    assert _code(exc) == "SignatureDoesNotMatch"
    unknown = make_client(server.endpoint, access_key="AKIANOSUCHKEY0000000")
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert _code(exc) == "InvalidAccessKeyId"
    resp = request(server, "GET", "/", access_key="AKIANOSUCHKEY0000000")
    assert resp.status == 403 and resp.code == "InvalidAccessKeyId"
    assert resp.headers["x-amz-request-id"]


def test_separate_owners(s3: Any, s3b: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"root only")
    for call in (lambda: s3b.list_objects_v2(Bucket=bucket), lambda: s3b.list_objects(Bucket=bucket),
                 lambda: s3b.get_object(Bucket=bucket, Key="secret"),
                 lambda: s3b.head_object(Bucket=bucket, Key="secret"),
                 lambda: s3b.put_object(Bucket=bucket, Key="intruder", Body=b"x"),
                 lambda: s3b.delete_object(Bucket=bucket, Key="secret"),
                 lambda: s3b.get_object_acl(Bucket=bucket, Key="secret"),
                 lambda: s3b.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "secret"})):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        if exc.value.operation_name != "HeadObject":  # HEAD answers carry no error document
            assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # copying out of root's private bucket into B's own bucket is refused too
    own = bucket + "-b"
    s3b.create_bucket(Bucket=own)
    with pytest.raises(ClientError) as exc:
        s3b.copy_object(Bucket=own, Key="c", CopySource={"Bucket": bucket, "Key": "secret"})
    assert _code(exc) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"root only"
    # and B's bucket is private to root as well... except root is just another user here
    s3b.put_object(Bucket=own, Key="b", Body=b"b")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=own, Key="b")


def _anon(server: LeofsServer, method: str, path: str, body: bytes = b"") -> int:
    """The status of an anonymous request; a refusal must be AccessDenied."""
    resp = request(server, method, path, body=body, sign=False)
    if resp.status == 403 and method != "HEAD":
        assert resp.code == "AccessDenied", (method, path, resp.body)
    return resp.status


def test_anonymous_access(server: LeofsServer, s3: Any, s3b: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="obj", Body=b"data")
    # private: nothing
    assert _anon(server, "GET", f"/{bucket}") == 403
    assert _anon(server, "GET", f"/{bucket}/obj") == 403
    assert _anon(server, "PUT", f"/{bucket}/anon", b"x") == 403
    assert _anon(server, "GET", "/") == 403
    # public-read: list, no put; reading an object follows the object's ACL (obj is private)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert _anon(server, "GET", f"/{bucket}") == 200
    assert _anon(server, "GET", f"/{bucket}?list-type=2") == 200
    assert _anon(server, "GET", f"/{bucket}/obj") == 403
    s3.put_object(Bucket=bucket, Key="obj", Body=b"data", ACL="public-read")
    resp = request(server, "GET", f"/{bucket}/obj", sign=False)
    assert (resp.status, resp.body) == (200, b"data")
    assert _anon(server, "PUT", f"/{bucket}/anon", b"x") == 403
    assert _anon(server, "DELETE", f"/{bucket}/obj") == 403
    assert _anon(server, "PUT", f"/{bucket}?acl", b"") == 403
    # public-read-write: anonymous put is allowed
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    assert _anon(server, "PUT", f"/{bucket}/anon", b"anonymous") == 200
    assert s3.get_object(Bucket=bucket, Key="anon")["Body"].read() == b"anonymous"
    # authenticated-read: other users read, anonymous do not
    s3.put_bucket_acl(Bucket=bucket, ACL="authenticated-read")
    assert _anon(server, "GET", f"/{bucket}") == 403
    s3.put_object_acl(Bucket=bucket, Key="obj", ACL="authenticated-read")
    assert s3b.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"data"
    # private bucket, public-read object
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_object(Bucket=bucket, Key="pub", Body=b"public", ACL="public-read")
    resp = request(server, "GET", f"/{bucket}/pub", sign=False)
    assert (resp.status, resp.body) == (200, b"public")
    assert _anon(server, "HEAD", f"/{bucket}/pub") == 200
    assert _anon(server, "GET", f"/{bucket}") == 403
    assert _anon(server, "GET", f"/{bucket}/obj") == 403
    s3.put_object_acl(Bucket=bucket, Key="obj", ACL="public-read")
    assert _anon(server, "GET", f"/{bucket}/obj") == 200
    s3.put_object_acl(Bucket=bucket, Key="obj", ACL="private")
    assert _anon(server, "GET", f"/{bucket}/obj") == 403
    assert s3b.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"public"
    with pytest.raises(ClientError):
        s3b.get_object(Bucket=bucket, Key="obj")


def test_virtual_host_style(server: LeofsServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="vh/key", Body=b"virtual")
    host = f"{bucket}.localhost:{server.port}"
    resp = request(server, "GET", "/vh/key", host=host)
    assert (resp.status, resp.body) == (200, b"virtual")
    resp = request(server, "PUT", "/vh/put", host=host, body=b"vput")
    assert resp.status == 200
    assert s3.get_object(Bucket=bucket, Key="vh/put")["Body"].read() == b"vput"
    listing = request(server, "GET", "/?list-type=2&prefix=vh%2F", host=host)
    assert listing.status == 200 and b"<Key>vh/key</Key>" in listing.body and b"<Key>vh/put</Key>" in listing.body
    assert request(server, "HEAD", "/", host=host).status == 200
    # SigV2 signs the virtual-host bucket as part of the resource
    req = AWSRequest(method="GET", url=f"http://{host}/vh/key", headers={"Host": host})
    req.auth_path = f"/{bucket}/vh/key"  # type: ignore[attr-defined]
    botocore.auth.HmacV1Auth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY)).add_auth(req)
    resp = request(server, "GET", "/vh/key", host=host, headers=dict(req.headers.items()), sign=False)
    assert (resp.status, resp.body) == (200, b"virtual")


def test_endpoints_managed_by_adm(server: LeofsServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ep", Body=b"endpoint")
    adm(server, "add-endpoint", "s3.leofs.test")
    endpoints = json.dumps(json.loads(adm(server, "get-endpoints")))
    assert "s3.leofs.test" in endpoints and "localhost" in endpoints
    deadline = time.monotonic() + 10
    host = f"{bucket}.s3.leofs.test:{server.port}"
    while True:
        resp = request(server, "GET", "/ep", host=host)
        if resp.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (resp.status, resp.body) == (200, b"endpoint")
    # the endpoint itself is path style
    resp = request(server, "GET", f"/{bucket}/ep", host=f"s3.leofs.test:{server.port}")
    assert (resp.status, resp.body) == (200, b"endpoint")
