"""Object operations against a real server with boto3 (default and when_required configs, http and
https): metadata, ranges, conditions, copies, DeleteObjects, object ACLs, GetObjectAttributes."""

from __future__ import annotations

import base64
import datetime as dt
import email.header
import hashlib
import os
import socket
import time
from email.utils import formatdate
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import raw_exchange, read_response, request, status_of
from tests.support.servers import LeofsServer

WHEN_REQUIRED = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
BIG = 6 * 1024 * 1024 + 12345  # above the 5.5 MiB chunking threshold


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture(params=["default", "when_required", "https-default", "https-when_required"])
def client(request: pytest.FixtureRequest, server: LeofsServer) -> Any:
    """boto3 in each configuration the issue names."""
    config = WHEN_REQUIRED if request.param.endswith("when_required") else {}
    if request.param.startswith("https"):
        tls: LeofsServer = request.getfixturevalue("tls_server")
        return make_client(tls.endpoint, verify=request.getfixturevalue("ca_bundle"), **config)
    return make_client(server.endpoint, **config)


@pytest.fixture
def cbucket(client: Any) -> str:
    name = f"obj-{os.getpid()}-{time.monotonic_ns()}"
    client.create_bucket(Bucket=name)
    return name


def test_put_get_head_delete_all_configs(client: Any, cbucket: str) -> None:
    data = os.urandom(100_000)
    put = client.put_object(Bucket=cbucket, Key="dir/obj", Body=data, ContentType="text/plain",
                            Metadata={"color": "blue"})
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(data).hexdigest()}"'
    got = client.get_object(Bucket=cbucket, Key="dir/obj")
    assert got["Body"].read() == data
    assert got["ETag"] == etag
    assert got["ContentType"] == "text/plain"
    assert got["ContentLength"] == len(data)
    assert got["Metadata"] == {"color": "blue"}
    head = client.head_object(Bucket=cbucket, Key="dir/obj")
    assert head["ContentLength"] == len(data) and head["ETag"] == etag
    assert "ContentEncoding" not in head  # aws-chunked never stored
    client.delete_object(Bucket=cbucket, Key="dir/obj")
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=cbucket, Key="dir/obj")
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        client.head_object(Bucket=cbucket, Key="dir/obj")
    assert _status(exc) == 404
    # deleting a missing key is a success
    assert client.delete_object(Bucket=cbucket, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_large_object_round_trip_and_copy(client: Any, cbucket: str) -> None:
    data = os.urandom(BIG)
    put = client.put_object(Bucket=cbucket, Key="big", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.get_object(Bucket=cbucket, Key="big")["Body"].read() == data
    part = client.get_object(Bucket=cbucket, Key="big", Range="bytes=5242000-5243000")
    assert part["Body"].read() == data[5242000:5243001]
    assert part["ContentRange"] == f"bytes 5242000-5243000/{BIG}"
    client.copy_object(Bucket=cbucket, Key="big-copy", CopySource={"Bucket": cbucket, "Key": "big"})
    assert client.get_object(Bucket=cbucket, Key="big-copy")["Body"].read() == data
    # overwrite large with small and small with large
    client.put_object(Bucket=cbucket, Key="big", Body=b"small")
    assert client.get_object(Bucket=cbucket, Key="big")["Body"].read() == b"small"
    assert client.get_object(Bucket=cbucket, Key="big-copy")["Body"].read() == data


def test_stored_headers_round_trip(s3: Any, bucket: str) -> None:
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    meta = {"plain": "value", "encoded": "=?UTF-8?B?aMOpbGxvIOKckw==?=", "spaces": "a  b"}
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ContentType="application/x-test",
                  ContentEncoding="gzip", ContentDisposition='attachment; filename="f.txt"',
                  ContentLanguage="de-DE", CacheControl="max-age=60", Expires=expires, Metadata=meta)
    for resp in (s3.get_object(Bucket=bucket, Key="k"), s3.head_object(Bucket=bucket, Key="k")):
        assert resp["ContentType"] == "application/x-test"
        assert resp["ContentEncoding"] == "gzip"
        assert resp["ContentDisposition"] == 'attachment; filename="f.txt"'
        assert resp["ContentLanguage"] == "de-DE"
        assert resp["CacheControl"] == "max-age=60"
        assert resp["Expires"] == expires
        assert resp["Metadata"] == meta
        assert resp["LastModified"].tzinfo is not None


def _decode_2047(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


def test_unicode_metadata_raw(server: LeofsServer, bucket: str) -> None:
    """Non-ASCII metadata sent as raw UTF-8 comes back as the same text (raw, or RFC 2047 as AWS does)."""
    value = "héllo wörld ✓"
    raw = (f"PUT /{bucket}/uni HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
           f"x-amz-meta-greeting: {value}\r\nx-amz-acl: public-read\r\nContent-Length: 2\r\n\r\nhi").encode()
    # botocore cannot sign non-ASCII headers: write anonymously into a public-read-write bucket (the
    # object public-read: the anonymous HEAD below reads it by the object's ACL)
    acl = request(server, "PUT", f"/{bucket}?acl", headers={"x-amz-acl": "public-read-write"})
    assert acl.status == 200
    status = status_of(raw_exchange(server, raw))
    assert status == 200
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"HEAD /{bucket}/uni HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode())
        head = read_response(sock, head=True)
    request(server, "PUT", f"/{bucket}?acl", headers={"x-amz-acl": "private"})
    line = next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"x-amz-meta-greeting:"))
    got = line.split(b":", 1)[1].strip().decode("utf-8")
    assert got == value or _decode_2047(got) == value


def test_default_content_type(server: LeofsServer, bucket: str) -> None:
    assert request(server, "PUT", f"/{bucket}/nt", body=b"x").status == 200
    head = request(server, "HEAD", f"/{bucket}/nt")
    assert head.headers["Content-Type"] in ("binary/octet-stream", "application/octet-stream")


def test_aws_chunked_content_encoding_stripped(tls_server: LeofsServer, ca_bundle: str) -> None:
    c = make_client(tls_server.endpoint, verify=ca_bundle)
    name = f"enc-{os.getpid()}"
    c.create_bucket(Bucket=name)
    # over https boto3 sends Content-Encoding: gzip,aws-chunked with a trailer checksum
    c.put_object(Bucket=name, Key="gz", Body=b"\x1f\x8b" + b"z" * 100, ContentEncoding="gzip")
    head = c.head_object(Bucket=name, Key="gz")
    assert head["ContentEncoding"] == "gzip"
    assert head["ContentLength"] == 102
    c.put_object(Bucket=name, Key="plain", Body=b"abc")
    assert "ContentEncoding" not in c.head_object(Bucket=name, Key="plain")


def test_metadata_too_large(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"big": "v" * 2100})
    assert _code(exc) == "MetadataTooLarge"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="m")
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"ok": "v" * 1900})
    assert len(s3.head_object(Bucket=bucket, Key="m")["Metadata"]["ok"]) == 1900


def test_response_overrides(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="k", ResponseContentType="image/png",
                        ResponseContentDisposition="inline", ResponseCacheControl="no-cache",
                        ResponseContentLanguage="fr", ResponseContentEncoding="identity",
                        ResponseExpires=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    assert got["ContentType"] == "image/png"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "fr"
    assert got["ContentEncoding"] == "identity"
    assert got["Expires"] == dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    # the stored values are unchanged
    assert s3.head_object(Bucket=bucket, Key="k")["ContentType"] == "text/plain"


def test_ranges(s3: Any, bucket: str) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    cases = {"bytes=0-9": (0, 9), "bytes=100-": (100, len(data) - 1), "bytes=-10": (len(data) - 10, len(data) - 1),
             "bytes=10000-99999": (10000, len(data) - 1), "bytes=5-5": (5, 5)}
    for header, (lo, hi) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{len(data)}"
        assert got["Body"].read() == data[lo:hi + 1]
        assert got["ContentLength"] == hi - lo + 1
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20000-")
    assert _status(exc) == 416 and _code(exc) == "InvalidRange"
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == f"bytes */{len(data)}"
    # an unparsable or multi range is ignored: whole object
    for ignored in ("bytes=5-1", "items=0-1", "bytes=0-1,3-4"):
        got = s3.get_object(Bucket=bucket, Key="r", Range=ignored)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200, ignored
        assert got["Body"].read() == data
    # HEAD with a range
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-99")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206 and head["ContentLength"] == 100


def test_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="e", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="e")
    assert got["Body"].read() == b"" and got["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="e", Range="bytes=0-0")
    assert _status(exc) == 416


def test_conditional_get_head(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    past = formatdate(modified.timestamp() - 3600, usegmt=True)
    future = formatdate(modified.timestamp() + 3600, usegmt=True)
    for op in (s3.get_object, s3.head_object):
        assert op(Bucket=bucket, Key="c", IfMatch=etag)["ETag"] == etag
        assert op(Bucket=bucket, Key="c", IfMatch="*")["ETag"] == etag
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfMatch='"0123"')
        assert _status(exc) == 412
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfNoneMatch=etag)
        assert _status(exc) == 304
        assert op(Bucket=bucket, Key="c", IfNoneMatch='"other"')["ETag"] == etag
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfModifiedSince=future)
        assert _status(exc) == 304
        assert op(Bucket=bucket, Key="c", IfModifiedSince=past)["ETag"] == etag
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
        assert _status(exc) == 412
        assert op(Bucket=bucket, Key="c", IfUnmodifiedSince=future)["ETag"] == etag
        # AWS precedence: If-Match true + If-Unmodified-Since false -> 200
        assert op(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past)["ETag"] == etag
        # If-None-Match false + If-Modified-Since true -> 304
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfNoneMatch=etag, IfModifiedSince=past)
        assert _status(exc) == 304
        # 412 wins over 304
        with pytest.raises(ClientError) as exc:
            op(Bucket=bucket, Key="c", IfMatch='"nope"', IfNoneMatch=etag)
        assert _status(exc) == 412


def test_not_modified_response_headers(server: LeofsServer, bucket: str) -> None:
    assert request(server, "PUT", f"/{bucket}/nm", body=b"abc").status == 200
    etag = request(server, "HEAD", f"/{bucket}/nm").headers["ETag"]
    resp = request(server, "GET", f"/{bucket}/nm", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.body == b""
    assert resp.headers["ETag"] == etag and resp.headers["Last-Modified"]
    resp = request(server, "GET", f"/{bucket}/nm", headers={"If-Match": '"x"'})
    assert resp.status == 412 and resp.code == "PreconditionFailed"


def test_conditional_put(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="p", Body=b"two", IfNoneMatch="*")
    assert _status(exc) == 412 and _code(exc) == "PreconditionFailed"
    etag = s3.head_object(Bucket=bucket, Key="p")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="p", Body=b"three", IfMatch='"00000000000000000000000000000000"')
    assert _status(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b"one"
    s3.put_object(Bucket=bucket, Key="p", Body=b"four", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b"four"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag)
    assert _status(exc) == 404


def test_copy_object(s3: Any, bucket: str) -> None:
    other = bucket + "-dst"
    s3.create_bucket(Bucket=other)
    src = s3.put_object(Bucket=bucket, Key="src key+%", Body=b"copy me", ContentType="text/x-src",
                        Metadata={"a": "1"})
    # COPY keeps metadata, other bucket, key with special characters
    res = s3.copy_object(Bucket=other, Key="dst", CopySource={"Bucket": bucket, "Key": "src key+%"})
    assert res["CopyObjectResult"]["ETag"] == src["ETag"]
    got = s3.get_object(Bucket=other, Key="dst")
    assert got["Body"].read() == b"copy me" and got["ContentType"] == "text/x-src" and got["Metadata"] == {"a": "1"}
    # REPLACE
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src key+%", MetadataDirective="REPLACE",
                   ContentType="text/new", Metadata={"b": "2"})
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["ContentType"] == "text/new" and head["Metadata"] == {"b": "2"}
    # onto itself: refused without REPLACE, allowed with it
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "dst2"})
    assert _code(exc) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "dst2"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["Metadata"] == {"c": "3"} and head["ETag"] == src["ETag"]
    assert s3.get_object(Bucket=bucket, Key="dst2")["Body"].read() == b"copy me"
    # missing source
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert _code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket + "-nope", "Key": "a"})
    assert _code(exc) == "NoSuchBucket"


def test_copy_source_conditions(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="s", Body=b"cond-src")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="s")["LastModified"]
    past = modified - dt.timedelta(hours=1)
    future = modified + dt.timedelta(hours=1)
    src = {"Bucket": bucket, "Key": "s"}
    ok = [dict(CopySourceIfMatch=etag), dict(CopySourceIfNoneMatch='"zzz"'), dict(CopySourceIfModifiedSince=past),
          dict(CopySourceIfUnmodifiedSince=future), dict(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=past)]
    bad = [dict(CopySourceIfMatch='"zzz"'), dict(CopySourceIfNoneMatch=etag),
           dict(CopySourceIfModifiedSince=future), dict(CopySourceIfUnmodifiedSince=past),
           dict(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=past)]
    for i, kwargs in enumerate(ok):
        s3.copy_object(Bucket=bucket, Key=f"ok{i}", CopySource=src, **kwargs)
    for i, kwargs in enumerate(bad):
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key=f"bad{i}", CopySource=src, **kwargs)
        assert _status(exc) == 412, kwargs
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"s", *(f"ok{i}" for i in range(len(ok)))}


@pytest.mark.parametrize("quiet", [False, True])
def test_delete_objects(s3: Any, bucket: str, quiet: bool) -> None:
    keys = [f"d/{i:04d}" for i in range(1000)]
    for key in keys[:20]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": quiet})
    if quiet:
        assert "Deleted" not in resp
    else:
        assert sorted(d["Key"] for d in resp["Deleted"]) == keys
    assert "Errors" not in resp
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_too_many(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    assert _code(exc) == "MalformedXML"


def _delete_xml(keys: list[str]) -> bytes:
    items = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete>{items}</Delete>'.encode()


def test_delete_objects_checksum_headers(server: LeofsServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    body = _delete_xml(["a"])
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = request(server, "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": md5})
    assert resp.status == 200 and b"<Key>a</Key>" in resp.body
    body = _delete_xml(["b"])
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    resp = request(server, "POST", f"/{bucket}?delete", body=body, headers={"x-amz-checksum-sha256": sha})
    assert resp.status == 200 and b"<Key>b</Key>" in resp.body
    # a wrong Content-MD5
    resp = request(server, "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": md5})
    assert resp.status == 400 and resp.code == "BadDigest"
    # when_required boto3 sends Content-MD5
    c = make_client(server.endpoint, **WHEN_REQUIRED)
    s3.put_object(Bucket=bucket, Key="c", Body=b"3")
    assert c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}]})["Deleted"] == [{"Key": "c"}]


def test_object_acl_never_touches_data(s3: Any, bucket: str) -> None:
    data = os.urandom(2000)
    etag = s3.put_object(Bucket=bucket, Key="acl", Body=data)["ETag"]
    big = os.urandom(BIG)
    big_etag = s3.put_object(Bucket=bucket, Key="bigacl", Body=big)["ETag"]
    for acl in ("public-read", "public-read-write", "authenticated-read", "private"):
        s3.put_object_acl(Bucket=bucket, Key="acl", ACL=acl)
        s3.put_object_acl(Bucket=bucket, Key="bigacl", ACL=acl)
        got = s3.get_object(Bucket=bucket, Key="acl")
        assert got["Body"].read() == data and got["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="bigacl")
    assert got["ETag"] == big_etag and got["Body"].read() == big
    s3.put_object_acl(Bucket=bucket, Key="acl", ACL="public-read")
    grants = {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"])
              for g in s3.get_object_acl(Bucket=bucket, Key="acl")["Grants"]}
    assert ("http://acs.amazonaws.com/groups/global/AllUsers", "READ") in grants
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert _code(exc) == "NoSuchKey"


def test_get_object_attributes(s3: Any, bucket: str) -> None:
    data = b"attributes!"
    put = s3.put_object(Bucket=bucket, Key="attr", Body=data, ChecksumAlgorithm="SHA256")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="attr",
                                     ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass"])
    assert attrs["ETag"] == put["ETag"].strip('"')
    assert attrs["ObjectSize"] == len(data)
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert attrs["LastModified"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="nope", ObjectAttributes=["ETag"])
    assert _code(exc) == "NoSuchKey"
