"""Exact S3 behaviours that SDKs and tools rely on (issue 14, "Exact behaviours to fix"), each
against the real server with boto3 or raw signed HTTP; the ``server`` fixture runs them on the
embedded server and on the 3-node cluster (the cluster gateway shares the handlers)."""

from __future__ import annotations

import base64
import hashlib
import threading
import urllib.parse
import urllib.request
import zlib
from typing import Any

import pytest
from awscrt import checksums as crt
from botocore.exceptions import ClientError

from leofs.gateway.router import BUCKET_SUBRESOURCES, OBJECT_SUBRESOURCES
from tests.integration.conftest import make_client
from tests.integration.s3_helpers import NS, request
from tests.support.cluster import LeofsCluster
from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY

MiB = 1024 * 1024


def _error(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return crt.crc32c(data).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crt.crc64nvme(data).to_bytes(8, "big")
    if algorithm == "SHA1":
        return hashlib.sha1(data).digest()
    return hashlib.sha256(data).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


def _embedded_only(server: Any) -> None:
    if isinstance(server, LeofsCluster):
        pytest.skip("request validation only: the cluster gateway runs the same handler code")


# -- subresources ----------------------------------------------------------------------------------
_UNBUILT = [(m, sub, "bucket") for sub, methods in BUCKET_SUBRESOURCES.items() for m, op in methods.items()
            if op is None] + [(m, sub, "object") for sub, methods in OBJECT_SUBRESOURCES.items()
                              for m, op in methods.items() if op is None]


def test_unbuilt_subresources_answer_501_never_the_object(server: Any, s3: Any, bucket: str) -> None:
    """Every subresource of the S3 API reference that is not built answers 501 NotImplemented XML;
    none falls through to a plain GET, PUT or DELETE of the object or bucket."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"the object's bytes")
    for method, sub, level in _UNBUILT:
        path = f"/{bucket}/k?{sub}" if level == "object" else f"/{bucket}?{sub}"
        resp = request(server, method, path, body=b"<x/>" if method in ("PUT", "POST") else b"")
        assert (resp.status, resp.code) == (501, "NotImplemented"), (method, path, resp.body[:200])
        assert b"the object's bytes" not in resp.body
    # nothing was changed by them: the object and the bucket are as they were
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the object's bytes"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_tagging_subresource_is_not_the_object(server: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"bytes")
    resp = request(server, "GET", f"/{bucket}/k?tagging")
    assert resp.status == 200 and resp.xml().tag == f"{NS}Tagging"


# -- CompleteMultipartUpload -------------------------------------------------------------------------
def _upload(s3: Any, bucket: str, key: str, parts: list[bytes], algorithm: str | None = None) -> tuple[str, list[
        dict[str, Any]]]:
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        got = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data, **extra)
        part = {"PartNumber": number, "ETag": got["ETag"]}
        if algorithm:
            part[f"Checksum{algorithm}"] = got[f"Checksum{algorithm}"]
        done.append(part)
    return upload, done


def test_complete_is_idempotent(s3: Any, bucket: str) -> None:
    parts = [b"a" * 100]
    upload, done = _upload(s3, bucket, "mp", parts)
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done})
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done})
    assert again["ETag"] == first["ETag"]
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)
    # other parts than it was completed with: that upload does not exist any more
    assert _error(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0"'}]})
                  )[0] == "NoSuchUpload"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_complete_accepts_the_composite_checksum(server: Any, s3: Any, bucket: str, algorithm: str) -> None:
    if algorithm != "CRC32C":
        _embedded_only(server)
    parts = [b"x" * (5 * MiB), b"y" * 100]
    upload, done = _upload(s3, bucket, "mp", parts, algorithm)
    composite = _b64(_digest(algorithm, b"".join(_digest(algorithm, p) for p in parts))) + f"-{len(parts)}"
    body = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag></Part>" for p in done
    ) + "</CompleteMultipartUpload>"
    header = f"x-amz-checksum-{algorithm.lower()}"
    wrong = _b64(_digest(algorithm, b"other")) + f"-{len(parts)}"
    resp = request(server, "POST", f"/{bucket}/mp?uploadId={upload}", body=body.encode(), headers={header: wrong})
    assert (resp.status, resp.code) == (400, "BadDigest"), resp.body
    resp = request(server, "POST", f"/{bucket}/mp?uploadId={upload}", body=body.encode(), headers={header: composite})
    assert resp.status == 200, resp.body
    assert resp.xml().findtext(f"{NS}Checksum{algorithm}") == composite
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == composite


def test_complete_with_a_malformed_composite_checksum(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    upload, done = _upload(s3, bucket, "mp", [b"z" * 10], "CRC32")
    body = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
            f"<ETag>{done[0]['ETag']}</ETag></Part></CompleteMultipartUpload>").encode()
    for bad in ("not base64!-1", "AAAA-x", "AAAAAAAA-1"):
        resp = request(server, "POST", f"/{bucket}/mp?uploadId={upload}", body=body,
                       headers={"x-amz-checksum-crc32": bad})
        assert (resp.status, resp.code) == (400, "InvalidRequest"), (bad, resp.body)


# -- DeleteBucket with uploads in progress -----------------------------------------------------------
def test_delete_bucket_with_only_uploads_in_progress(s3: Any) -> None:
    name = "conform-uploads-only"
    s3.create_bucket(Bucket=name)
    first = s3.create_multipart_upload(Bucket=name, Key="a")["UploadId"]
    s3.upload_part(Bucket=name, Key="a", UploadId=first, PartNumber=1, Body=b"part")
    s3.create_multipart_upload(Bucket=name, Key="b/c")
    s3.delete_bucket(Bucket=name)
    assert _error(lambda: s3.head_bucket(Bucket=name))[1] == 404
    s3.create_bucket(Bucket=name)  # the new bucket does not see the old uploads
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert _error(lambda: s3.upload_part(Bucket=name, Key="a", UploadId=first, PartNumber=2, Body=b"x"))[0] == (
        "NoSuchUpload")
    s3.delete_bucket(Bucket=name)


def test_delete_bucket_races_an_upload_part(server: Any, s3: Any) -> None:
    """An UploadPart whose body is still arriving while DeleteBucket runs: the bucket holds only
    the upload, so the delete succeeds and aborts it; the part, when its body is in, finds its
    upload gone (404), frees what it wrote, and nothing of it shows in a bucket of the same name."""
    from tests.integration.s3_helpers import connection, signed_headers

    name = "conform-upload-race"
    s3.create_bucket(Bucket=name)
    upload = s3.create_multipart_upload(Bucket=name, Key="k")["UploadId"]
    data = b"p" * (2 * MiB)
    target = f"/{name}/k?partNumber=1&uploadId={upload}"
    signed = signed_headers(server, "PUT", target, headers={"Content-Length": str(len(data))}, body=data)
    conn = connection(server)
    conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for h, v in signed.items():
        conn.putheader(h, v)
    conn.endheaders()
    conn.send(data[:MiB])  # half the body: the part is in flight
    try:
        s3.delete_bucket(Bucket=name)
        conn.send(data[MiB:])
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
    finally:
        conn.close()
    assert status == 404 and (b"NoSuchUpload" in body or b"NoSuchBucket" in body), body
    assert _error(lambda: s3.head_bucket(Bucket=name))[1] == 404
    s3.create_bucket(Bucket=name)
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    s3.delete_bucket(Bucket=name)


# -- checksums and digests -----------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_mismatch_is_bad_digest(server: Any, s3: Any, bucket: str, algorithm: str) -> None:
    header = f"x-amz-checksum-{algorithm.lower()}"
    wrong = _b64(_digest(algorithm, b"something else"))
    resp = request(server, "PUT", f"/{bucket}/k", body=b"data", headers={header: wrong})
    assert (resp.status, resp.code) == (400, "BadDigest"), resp.body
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm)["UploadId"]
    resp = request(server, "PUT", f"/{bucket}/mp?partNumber=1&uploadId={upload}", body=b"data",
                   headers={header: wrong})
    assert (resp.status, resp.code) == (400, "BadDigest"), resp.body
    # malformed (not base64 of the algorithm's size): InvalidRequest, not BadDigest
    for bad in ("!!!", _b64(b"\0" * 3)):
        resp = request(server, "PUT", f"/{bucket}/k", body=b"data", headers={header: bad})
        assert (resp.status, resp.code) == (400, "InvalidRequest"), (bad, resp.body)
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404


def test_content_md5(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    wrong = _b64(hashlib.md5(b"other").digest())
    assert request(server, "PUT", f"/{bucket}/k", body=b"data", headers={"Content-MD5": wrong}).code == "BadDigest"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    resp = request(server, "PUT", f"/{bucket}/mp?partNumber=1&uploadId={upload}", body=b"data",
                   headers={"Content-MD5": wrong})
    assert (resp.status, resp.code) == (400, "BadDigest")
    for bad in ("%%%", _b64(b"short")):
        resp = request(server, "PUT", f"/{bucket}/k", body=b"data", headers={"Content-MD5": bad})
        assert (resp.status, resp.code) == (400, "InvalidDigest"), bad
    good = _b64(hashlib.md5(b"data").digest())
    assert request(server, "PUT", f"/{bucket}/k", body=b"data", headers={"Content-MD5": good}).status == 200


# -- presigned URLs ------------------------------------------------------------------------------
def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("expires", ["0", "-1", "-604800", "604801", "99999999999999999999"])
def test_presigned_expiry_out_of_bounds_is_access_denied(server: Any, s3: Any, bucket: str, expires: str) -> None:
    _embedded_only(server)
    s3.put_object(Bucket=bucket, Key="p", Body=b"x")
    v4 = make_client(server.endpoint, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    status, body = _fetch(url.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}"))
    assert status == 403 and b"<Code>AccessDenied</Code>" in body, body


def test_expired_presigned_url_is_access_denied(server: Any, s3: Any, bucket: str) -> None:
    import datetime as dt

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.integration.s3_helpers import fake_now

    s3.put_object(Bucket=bucket, Key="p", Body=b"x")
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/p")
    with fake_now(dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)):
        botocore.auth.S3SigV4QueryAuth(Credentials(ROOT_ACCESS_KEY, ROOT_SECRET_KEY), "s3", "us-east-1",
                                       expires=60).add_auth(req)
    status, body = _fetch(req.url)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_sigv2_dated_before_the_epoch_is_access_denied(server: Any, bucket: str) -> None:
    _embedded_only(server)
    import hmac

    date = "Wed, 31 Dec 1969 23:59:59 GMT"
    string_to_sign = f"GET\n\n\n{date}\n/{bucket}"
    signature = _b64(hmac.new(ROOT_SECRET_KEY.encode(), string_to_sign.encode(), hashlib.sha1).digest())
    resp = request(server, "GET", f"/{bucket}", sign=False,
                   headers={"Date": date, "Authorization": f"AWS {ROOT_ACCESS_KEY}:{signature}"})
    assert (resp.status, resp.code) == (403, "AccessDenied"), resp.body
    v2 = make_client(server.endpoint, signature_version="s3")
    url = v2.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=60)
    parts = urllib.parse.urlsplit(url)
    query = "&".join("Expires=-1" if p.startswith("Expires=") else p for p in parts.query.split("&"))
    status, body = _fetch(urllib.parse.urlunsplit(parts._replace(query=query)))
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


# -- ListBuckets pagination --------------------------------------------------------------------------
def test_list_buckets_pagination(server: Any, s3: Any) -> None:
    names = [f"conform-page-{i:02d}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    try:
        seen: list[str] = []
        kwargs: dict[str, Any] = {"MaxBuckets": 2, "Prefix": "conform-page-"}
        while True:
            page = s3.list_buckets(**kwargs)
            assert page["Prefix"] == "conform-page-"
            assert all(b["BucketRegion"] == "us-east-1" for b in page["Buckets"])
            assert len(page["Buckets"]) <= 2
            seen += [b["Name"] for b in page["Buckets"]]
            if "ContinuationToken" not in page:
                break
            kwargs["ContinuationToken"] = page["ContinuationToken"]
        assert seen == names
        everything = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert set(names) <= set(everything) and "ContinuationToken" not in s3.list_buckets()
        assert [b["Name"] for b in s3.list_buckets(Prefix="conform-page-0", BucketRegion="us-east-1")["Buckets"]] == [
            "conform-page-00", "conform-page-01", "conform-page-02", "conform-page-03", "conform-page-04"][:0] + [
            n for n in names if n.startswith("conform-page-0")]
        assert s3.list_buckets(Prefix="conform-page-", BucketRegion="eu-west-1")["Buckets"] == []
        for bad in ("0", "10001", "x"):
            resp = request(server, "GET", f"/?max-buckets={bad}")
            assert (resp.status, resp.code) == (400, "InvalidArgument"), bad
    finally:
        for name in names:
            s3.delete_bucket(Bucket=name)


# -- x-amz-expected-bucket-owner -----------------------------------------------------------------------
def test_expected_bucket_owner(server: Any, s3: Any, bucket: str) -> None:
    owner = s3.list_buckets()["Owner"]["ID"]
    other = "0" * 64
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner=owner)
    calls = [
        lambda o: s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ExpectedBucketOwner=o),
        lambda o: s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner=o),
        lambda o: s3.head_object(Bucket=bucket, Key="k", ExpectedBucketOwner=o),
        lambda o: s3.delete_object(Bucket=bucket, Key="k2", ExpectedBucketOwner=o),
        lambda o: s3.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.list_objects(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.get_bucket_acl(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.get_object_acl(Bucket=bucket, Key="k", ExpectedBucketOwner=o),
        lambda o: s3.get_object_tagging(Bucket=bucket, Key="k", ExpectedBucketOwner=o),
        lambda o: s3.get_bucket_location(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.list_multipart_uploads(Bucket=bucket, ExpectedBucketOwner=o),
        lambda o: s3.create_multipart_upload(Bucket=bucket, Key="m", ExpectedBucketOwner=o),
        lambda o: s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"},
                                 ExpectedBucketOwner=o),
        lambda o: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "zz"}]}, ExpectedBucketOwner=o),
    ]
    for call in calls:
        code, status = _error(lambda c=call: c(other))  # type: ignore[misc]
        assert status == 403 and code in ("AccessDenied", "403")  # a HEAD answer has no body
        call(owner)
    assert _error(lambda: s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "k"},
                                         ExpectedSourceBucketOwner=other)) == ("AccessDenied", 403)
    s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "k"}, ExpectedSourceBucketOwner=owner)
    assert _error(lambda: s3.delete_bucket(Bucket=bucket, ExpectedBucketOwner=other)) == ("AccessDenied", 403)


# -- partNumber ------------------------------------------------------------------------------------
def test_part_number_reads(s3: Any, bucket: str) -> None:
    parts = [b"1" * (5 * MiB), b"2" * 1000]
    upload, done = _upload(s3, bucket, "mp", parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done})
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert head["PartsCount"] == 2 and head["ContentLength"] == 1000
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=1)
    assert got["PartsCount"] == 2 and got["ContentLength"] == 5 * MiB
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="mp", PartNumber=3)) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as info:  # AWS names the part asked for and the object's count
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=3)
    assert info.value.response["Error"].get("PartNumberRequested") == "3"
    assert info.value.response["Error"].get("ActualPartCount") == "2"
    s3.put_object(Bucket=bucket, Key="plain", Body=b"abc")
    assert s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)["Body"].read() == b"abc"
    assert _error(lambda: s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)) == ("InvalidPartNumber", 416)


# -- UploadPartCopy ranges ----------------------------------------------------------------------------
def test_upload_part_copy_range_outside_the_source(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for bad in ("bytes=0-10", "bytes=10-12", "bytes=5-99999999999999999999"):
        assert _error(lambda r=bad: s3.upload_part_copy(  # type: ignore[misc]
            Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange=r)) == ("InvalidRange", 400), bad
    assert _error(lambda: s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange="bytes=5-2"))[0] == "InvalidArgument"
    got = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1,
                              CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=2-9")
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": got["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"23456789"


# -- Content-Encoding: aws-chunked ----------------------------------------------------------------------
def test_aws_chunked_label_on_a_plain_upload(server: Any, s3: Any, bucket: str) -> None:
    """Not a streaming upload (x-amz-content-sha256 is the body's hash): the body is stored as
    sent, and aws-chunked is dropped from the stored Content-Encoding."""
    body = b"5\r\nhello\r\n0\r\n\r\n"  # looks like aws-chunked framing, but it is the object
    for encoding, stored in (("aws-chunked", None), ("gzip, aws-chunked", "gzip"), ("aws-chunked,br", "br")):
        resp = request(server, "PUT", f"/{bucket}/k", body=body, headers={"Content-Encoding": encoding})
        assert resp.status == 200, resp.body
        got = s3.get_object(Bucket=bucket, Key="k")
        assert got["Body"].read() == body
        assert got.get("ContentEncoding") == stored, encoding


# -- listings -------------------------------------------------------------------------------------
def test_empty_continuation_token_is_absent(server: Any, s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    resp = request(server, "GET", f"/{bucket}?list-type=2&continuation-token=&start-after=a")
    assert resp.status == 200, resp.body
    doc = resp.xml()
    assert [k.text for k in doc.iter(f"{NS}Key")] == ["b", "c"]
    assert doc.find(f"{NS}ContinuationToken") is None


def test_list_objects_v1_url_encoding_returns_prefix_as_sent(server: Any, s3: Any, bucket: str) -> None:
    for key in ("a b/c d", "a b/e+f", "a b/g/h", "x"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    resp = request(server, "GET", f"/{bucket}?encoding-type=url&prefix=a%20b%2F&delimiter=%2F&marker=a%20b%2Fc")
    doc = resp.xml()
    unquote = urllib.parse.unquote
    assert doc.findtext(f"{NS}Prefix") == "a b/"  # as sent
    marker = doc.findtext(f"{NS}Marker") or ""
    assert " " not in marker and unquote(marker) == "a b/c"  # encoded
    assert unquote(doc.findtext(f"{NS}Delimiter") or "") == "/"
    keys = [k.text or "" for k in doc.iter(f"{NS}Key")]
    assert [unquote(k) for k in keys] == ["a b/c d", "a b/e+f"]  # after the marker "a b/c"
    assert not any(" " in k or "+" in k for k in keys)
    prefixes = [p.findtext(f"{NS}Prefix") or "" for p in doc.iter(f"{NS}CommonPrefixes")]
    assert [unquote(p) for p in prefixes] == ["a b/g/"] and " " not in prefixes[0]
    # botocore asks for encoding-type=url by itself and decodes the fields AWS encodes, not Prefix
    got = s3.list_objects(Bucket=bucket, Prefix="a b/", Delimiter="/", MaxKeys=1)
    assert got["Prefix"] == "a b/" and got["Contents"][0]["Key"] == "a b/c d"
    assert got["IsTruncated"] and got["NextMarker"] == "a b/c d"


# -- bucket names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["foo.-bar", "foo-.bar", "a-.b.c", "x.y.-z"])
def test_bucket_names_with_a_hyphen_next_to_a_dot(server: Any, s3: Any, name: str) -> None:
    _embedded_only(server)
    assert _error(lambda: s3.create_bucket(Bucket=name)) == ("InvalidBucketName", 400)


def test_bucket_names_with_dots_and_hyphens_apart(server: Any, s3: Any) -> None:
    _embedded_only(server)
    for name in ("foo.bar-baz", "foo-bar.baz"):
        s3.create_bucket(Bucket=name)
        s3.delete_bucket(Bucket=name)


# -- conditional deletes ----------------------------------------------------------------------------
def test_delete_object_if_match(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    assert _error(lambda: s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0123"')) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404
    assert _error(lambda: s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404


def test_delete_objects_with_etags(s3: Any, bucket: str) -> None:
    one = s3.put_object(Bucket=bucket, Key="one", Body=b"1")["ETag"]
    s3.put_object(Bucket=bucket, Key="two", Body=b"2")
    s3.put_object(Bucket=bucket, Key="three", Body=b"3")
    got = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "one", "ETag": one}, {"Key": "two", "ETag": one}, {"Key": "three"}]})
    assert sorted(d["Key"] for d in got["Deleted"]) == ["one", "three"]
    assert [(e["Key"], e["Code"]) for e in got["Errors"]] == [("two", "PreconditionFailed")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["two"]


def test_conditional_delete_races_an_overwrite(s3: Any, bucket: str) -> None:
    """DeleteObject If-Match while the key is being overwritten: the delete removes only the
    version it names; a newer version is never deleted by a condition on an older one."""
    for round_ in range(10):
        etag = s3.put_object(Bucket=bucket, Key="k", Body=f"old{round_}".encode())["ETag"]

        def overwrite(r: int = round_) -> None:
            s3.put_object(Bucket=bucket, Key="k", Body=f"new{r}".encode())

        writer = threading.Thread(target=overwrite)
        writer.start()
        try:
            s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
            deleted = True
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "PreconditionFailed"
            deleted = False
        writer.join(timeout=60)
        try:
            body = s3.get_object(Bucket=bucket, Key="k")["Body"].read()
        except ClientError:
            body = None
        # the new version survives unless the delete came first and the overwrite after it ...
        assert body in (f"new{round_}".encode(), None)
        if not deleted:  # ... and a refused delete always leaves the new version
            assert body == f"new{round_}".encode()
        if body is None:
            assert deleted


# -- ACLs -------------------------------------------------------------------------------------------
def test_acl_at_create_bucket_has_owner_id_and_name(s3: Any) -> None:
    name = "conform-acl-create"
    s3.create_bucket(Bucket=name, ACL="public-read")
    try:
        acl = s3.get_bucket_acl(Bucket=name)
        owner = s3.list_buckets()["Owner"]
        assert acl["Owner"] == {"ID": owner["ID"], "DisplayName": owner["DisplayName"]} and owner["DisplayName"]
        grants = {(g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"])
                  for g in acl["Grants"]}
        assert grants == {("CanonicalUser", owner["ID"], "FULL_CONTROL"),
                          ("Group", "http://acs.amazonaws.com/groups/global/AllUsers", "READ")}
        full = next(g for g in acl["Grants"] if g["Permission"] == "FULL_CONTROL")
        assert full["Grantee"]["DisplayName"] == owner["DisplayName"]
    finally:
        s3.delete_bucket(Bucket=name)


def _grants(acl: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"].get("URI", ""), g["Permission"])
            for g in acl["Grants"]}


@pytest.fixture(scope="module")
def grantee(server: Any) -> tuple[str, str, str, str]:
    """A second user with an e-mail address: (access key, secret key, canonical id, e-mail)."""
    import json

    from tests.integration.s3_helpers import adm

    email = f"Grantee.{id(server)}@Example.org"
    user = json.loads(adm(server, "create-user", f"grantee-{id(server)}", "--email", email))
    client = make_client(server.endpoint, access_key=user["access_key"], secret_key=user["secret_key"])
    return user["access_key"], user["secret_key"], client.list_buckets()["Owner"]["ID"], email


def test_grant_headers_on_put_object_and_create_bucket(server: Any, s3: Any, bucket: str,
                                                        grantee: tuple[str, str, str, str]) -> None:
    access, secret, grantee_id, email = grantee
    other = make_client(server.endpoint, access_key=access, secret_key=secret)
    all_users = "http://acs.amazonaws.com/groups/global/AllUsers"
    s3.put_object(Bucket=bucket, Key="k", Body=b"granted", GrantRead=f'id="{grantee_id}"',
                  GrantReadACP=f'uri="{all_users}"', GrantFullControl=f"emailAddress={email.upper()}")
    assert _grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {
        ("CanonicalUser", grantee_id, "READ"), ("Group", all_users, "READ_ACP"),
        ("CanonicalUser", grantee_id, "FULL_CONTROL")}
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"granted"  # the grant is in force
    # the same on CreateMultipartUpload (carried to the object) and on CopyObject
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", GrantRead=f"emailAddress={email}")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert other.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p"
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"}, GrantRead=f"id={grantee_id}")
    assert _grants(s3.get_object_acl(Bucket=bucket, Key="copy")) == {("CanonicalUser", grantee_id, "READ")}
    # bucket: the grants are its ACL
    name = f"conform-grants-{id(server) % 100000}"
    s3.create_bucket(Bucket=name, GrantRead=f"emailAddress={email}", GrantWrite=f'id="{grantee_id}"')
    try:
        assert _grants(s3.get_bucket_acl(Bucket=name)) == {("CanonicalUser", grantee_id, "READ"),
                                                           ("CanonicalUser", grantee_id, "WRITE")}
        other.put_object(Bucket=name, Key="by-grantee", Body=b"w")
        assert [o["Key"] for o in other.list_objects_v2(Bucket=name)["Contents"]] == ["by-grantee"]
        other.delete_object(Bucket=name, Key="by-grantee")
    finally:
        s3.delete_bucket(Bucket=name)


def test_grants_by_unknown_e_mail_or_id(server: Any, s3: Any, bucket: str) -> None:
    _embedded_only(server)
    unknown = "emailAddress=nobody@nowhere"
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead=unknown)) == (
        "UnresolvableGrantByEmailAddress", 400)
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead=f"id={'f' * 64}")) == (
        "InvalidArgument", 400)
    assert _error(lambda: s3.create_bucket(Bucket="conform-unresolvable", GrantRead="emailAddress=no@where")) == (
        "UnresolvableGrantByEmailAddress", 400)
    assert _error(lambda: s3.head_bucket(Bucket="conform-unresolvable"))[1] == 404
    assert _error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read",
                                        GrantRead="uri=http://acs.amazonaws.com/groups/global/AllUsers")) == (
        "InvalidRequest", 400)
    assert _error(lambda: s3.head_object(Bucket=bucket, Key="k"))[1] == 404


def test_grant_by_e_mail_in_an_acl_document(server: Any, s3: Any, bucket: str,
                                             grantee: tuple[str, str, str, str]) -> None:
    _, _, grantee_id, email = grantee
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner = s3.get_object_acl(Bucket=bucket, Key="k")["Owner"]
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "AmazonCustomerByEmail", "EmailAddress": email}, "Permission": "READ"}]})
    assert _grants(s3.get_object_acl(Bucket=bucket, Key="k")) == {("CanonicalUser", grantee_id, "READ")}
    assert _error(lambda: s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "AmazonCustomerByEmail", "EmailAddress": "x@y.z"}, "Permission": "READ"}]})) == (
        "UnresolvableGrantByEmailAddress", 400)
