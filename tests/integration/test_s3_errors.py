"""Error responses against a real server: S3 XML documents, x-amz-request-id everywhere, bodiless
HEAD errors, and a battery of malformed requests that must never produce a 5xx or a traceback."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.s3_helpers import read_response, request, signed_headers, status_of
from tests.support.servers import LeofsServer


@pytest.fixture(scope="module")
def ebucket(server: LeofsServer) -> Iterator[str]:
    name = f"errors-{os.getpid()}"
    mark = server.log_mark()  # the server is shared by the session: check only what this module caused
    assert request(server, "PUT", f"/{name}").status == 200
    assert request(server, "PUT", f"/{name}/obj", body=b"object").status == 200
    yield name
    # the server log must not show a single traceback after the whole module
    log = server.log_since(mark)
    assert "Traceback" not in log, log[-5000:]
    assert "internal error" not in log.lower(), log[-5000:]


def test_error_document(server: LeofsServer, ebucket: str) -> None:
    resp = request(server, "GET", f"/{ebucket}/missing")
    assert resp.status == 404
    root = resp.xml()
    assert root.tag == "Error"
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message")
    assert root.findtext("RequestId") == resp.headers["x-amz-request-id"]
    assert root.findtext("Key") == "missing"
    assert resp.headers["Content-Type"].startswith("application/xml")


@pytest.mark.parametrize("path", ["/", "/{b}", "/{b}/obj", "/{b}/missing", "/nobucket-x/obj", "/{b}?acl"])
def test_request_id_everywhere(server: LeofsServer, ebucket: str, path: str) -> None:
    for method in ("GET", "HEAD"):
        for sign in (True, False):
            resp = request(server, method, path.format(b=ebucket), sign=sign)
            assert resp.headers.get("x-amz-request-id"), (method, path, sign, resp.status)
            if method == "HEAD":
                assert resp.body == b""


def test_head_errors_have_no_body(server: LeofsServer, ebucket: str) -> None:
    for path, status in ((f"/{ebucket}/missing", 404), ("/nobucket-y", 404), (f"/{ebucket}/obj", 403)):
        resp = request(server, "HEAD", path, sign=status != 403)
        assert resp.status == status and resp.body == b""
    resp = request(server, "HEAD", f"/{ebucket}/obj", headers={"If-Match": '"nope"'})
    assert resp.status == 412 and resp.body == b""


def test_method_not_allowed(server: LeofsServer, ebucket: str) -> None:
    resp = request(server, "POST", f"/{ebucket}/obj")
    assert resp.status == 405 and resp.code == "MethodNotAllowed"
    resp = request(server, "DELETE", "/")
    assert resp.status == 405


def test_unknown_subresources(server: LeofsServer, ebucket: str) -> None:
    for sub in ("policy", "lifecycle", "cors", "tagging", "website"):
        resp = request(server, "GET", f"/{ebucket}?{sub}")
        assert resp.status in (404, 501) and resp.code, (sub, resp.status)
    resp = request(server, "GET", f"/{ebucket}?no-such-subresource")
    assert resp.status < 500


def _battery(bucket: str) -> list[tuple[str, str, dict[str, str], bytes]]:
    xml_bad = b"<Delete><Object><Key>a</Key></Object"
    return [
        ("PUT", f"/{bucket}?acl", {}, b"<AccessControlPolicy><broken"),
        ("PUT", f"/{bucket}?acl", {}, b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                                       b"<AccessControlPolicy>&e;</AccessControlPolicy>"),
        ("PUT", f"/{bucket}?acl", {}, b"<AccessControlPolicy><AccessControlList><Grant><Grantee>"
                                       b"</Grantee><Permission>BOGUS</Permission></Grant></AccessControlList>"
                                       b"</AccessControlPolicy>"),
        ("POST", f"/{bucket}?delete", {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}, xml_bad),
        ("POST", f"/{bucket}?delete", {}, b"<Delete></Delete>"),
        ("POST", f"/{bucket}?delete", {"x-amz-checksum-crc32": "AAAAAA=="}, b"\xff\xfe garbage"),
        ("PUT", "/newbucket-xml-err", {}, b"<CreateBucketConfiguration><LocationConstraint>"),
        ("PUT", "/newbucket-xml-err2", {}, b"not xml at all"),
        ("POST", f"/{bucket}/obj?uploads", {}, b""),
        ("POST", f"/{bucket}/obj?uploadId=nonexistent", {}, b"<CompleteMultipartUpload></CompleteMultipartUpload>"),
        ("POST", f"/{bucket}/obj?uploadId=nonexistent", {}, b"<<<>>>"),
        ("PUT", f"/{bucket}/obj?partNumber=abc&uploadId=x", {}, b"data"),
        ("PUT", f"/{bucket}/obj?partNumber=0&uploadId=x", {}, b"data"),
        ("PUT", f"/{bucket}/obj?partNumber=99999&uploadId=x", {}, b"data"),
        ("GET", f"/{bucket}/obj?partNumber=abc", {}, b""),
        ("GET", f"/{bucket}/obj?partNumber=0", {}, b""),
        ("GET", f"/{bucket}/obj?uploadId=x&max-parts=abc", {}, b""),
        ("GET", f"/{bucket}?uploads&max-uploads=-5", {}, b""),
        ("GET", f"/{bucket}?list-type=2&max-keys=%FF", {}, b""),
        ("GET", f"/{bucket}?list-type=3", {}, b""),
        ("GET", f"/{bucket}?versions&version-id-marker=x", {}, b""),
        ("GET", f"/{bucket}/obj?attributes", {"x-amz-object-attributes": "Bogus,,"}, b""),
        ("GET", f"/{bucket}/obj?attributes", {"x-amz-object-attributes": "ObjectParts",
                                               "x-amz-max-parts": "zzz"}, b""),
        ("GET", f"/{bucket}/obj", {"Range": "bytes=abc-def"}, b""),
        ("GET", f"/{bucket}/obj", {"Range": "bytes=99999999999999999999999-"}, b""),
        ("GET", f"/{bucket}/obj", {"If-Modified-Since": "not a date"}, b""),
        ("GET", f"/{bucket}/obj", {"If-Unmodified-Since": "Mon, 99 Foo 99999 99:99:99 GMT"}, b""),
        ("GET", f"/{bucket}/obj", {"x-amz-checksum-mode": "ENABLED", "Range": "bytes=-0"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-copy-source": "/"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-copy-source": "%ZZ%00/..%2F"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-copy-source": f"/{bucket}/obj?versionId=123"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-copy-source": f"/{bucket}/obj", "x-amz-metadata-directive": "BOGUS"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-copy-source": f"/{bucket}/obj",
                                     "x-amz-copy-source-range": "bytes=zz"}, b""),
        ("PUT", f"/{bucket}/obj2", {"x-amz-storage-class": "BOGUS"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"x-amz-acl": "bogus"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"Content-MD5": "%%%"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"x-amz-trailer": "x-amz-checksum-md17"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"x-amz-sdk-checksum-algorithm": "BOGUS", "x-amz-checksum-bogus": "x"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"x-amz-decoded-content-length": "-1", "Content-Encoding": "aws-chunked"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"If-None-Match": "garbage"}, b"x"),
        ("PUT", f"/{bucket}/obj2", {"Expires": "garbage"}, b"x"),
        ("PUT", f"/{bucket}/obj2?acl", {"x-amz-grant-read": "nonsense"}, b""),
        ("PUT", f"/{bucket}/obj2?acl", {"x-amz-grant-read": 'id="nobody-at-all"'}, b""),
        ("PUT", f"/{bucket}/..%2F..%2Fetc%2Fpasswd", {}, b"traversal"),
        ("GET", f"/{bucket}/../../etc/passwd", {}, b""),
        ("GET", f"/{bucket}/%2e%2e/%2e%2e/etc/passwd", {}, b""),
        ("GET", f"/{bucket}/key%00with-nul", {}, b""),
        ("PUT", f"/{bucket}/key%00with-nul", {}, b"x"),
        ("GET", f"/{bucket}/%FF%FE%FD", {}, b""),
        ("PUT", f"/{bucket}/%C0%AF", {}, b"x"),
        ("GET", f"/{bucket}/{'k' * 1100}", {}, b""),
        ("GET", "/%00", {}, b""),
        ("GET", "/..", {}, b""),
        ("PUT", "/bad_bucket%00", {}, b""),
        ("GET", f"/{bucket}?prefix=%00&delimiter=%FF", {}, b""),
        ("GET", f"/{bucket}?marker=%FF%FF&encoding-type=url", {}, b""),
        ("GET", f"/{bucket}?list-type=2&start-after=%C3", {}, b""),
        ("GET", f"/{bucket}?list-type=2&continuation-token=" + "A" * 500, {}, b""),
        ("GET", f"/{bucket}?list-type=2&continuation-token=%E2%98%83", {}, b""),
        ("GET", f"/{bucket}?location&acl&versions&uploads", {}, b""),
        ("PUT", f"/{bucket}?versioning", {}, b"<VersioningConfiguration/>"),
        ("DELETE", f"/{bucket}/obj?uploadId=", {}, b""),
        ("OPTIONS", f"/{bucket}/obj", {}, b""),
        ("PATCH", f"/{bucket}/obj", {}, b"x"),
        ("GET", f"/{bucket}/obj", {"x-amz-meta-" + "m" * 3000: "v"}, b""),
    ]


def test_malformed_requests_never_5xx(server: LeofsServer, ebucket: str) -> None:
    failures = []
    for method, path, headers, body in _battery(ebucket):
        for sign in (True, False):
            resp = request(server, method, path, headers=headers, body=body, sign=sign)
            if resp.status >= 500 and resp.code != "NotImplemented":
                failures.append((method, path, headers, sign, resp.status, resp.body[:300]))
            if not resp.headers.get("x-amz-request-id"):
                failures.append((method, path, "no request id", resp.status))
    assert not failures, failures
    # the traversal never reached outside: the object is a key, the data directory holds no stray file
    got = request(server, "GET", f"/{ebucket}/..%2F..%2Fetc%2Fpasswd")
    assert got.status == 200 and got.body == b"traversal"
    parent = server.data_dir.parent
    assert not (parent / "etc").exists() and not (server.data_dir / "etc").exists()


def _raw(server: LeofsServer, data: bytes) -> bytes:
    """The raw answer to ``data``; b"" when the server reset the connection instead of answering."""
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(data)
        try:
            return read_response(sock)
        except ConnectionResetError:
            return b""


def test_malformed_http_never_5xx(server: LeofsServer, ebucket: str) -> None:
    host = f"Host: {server.host}:{server.port}\r\n"
    get = b"GET /" + ebucket.encode()
    cases: list[tuple[bytes, int]] = [  # (request, the one right status)
        (b"GET / HTTP/1.1\r\n" + host.encode() + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + host.encode() + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n", 400),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n" + host.encode() + b"\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\n" + host.encode() + b"\r\n", 400),
        (f"GET http://{server.host}:{server.port}/{ebucket}/obj HTTP/1.1\r\n".encode() + host.encode() + b"\r\n", 403),
        (b"GET noslash HTTP/1.1\r\n" + host.encode() + b"\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 403),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 403),
        (b"PUT /" + ebucket.encode() + b"/x HTTP/1.1\r\n" + host.encode() + b"Content-Length: abc\r\n\r\n", 400),
        (b"PUT /" + ebucket.encode() + b"/x HTTP/1.1\r\n" + host.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
         b"zz\r\n", 400),
        (b"PUT /" + ebucket.encode() + b"/x HTTP/1.1\r\n" + host.encode() + b"Content-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (get + b" HTTP/1.1\r\n" + host.encode() + b"Authorization: AWS4-HMAC-SHA256 garbage\r\n\r\n", 400),
        (b"GET /" + ebucket.encode() + b" HTTP/1.1\r\n" + host.encode() + b"Authorization: AWS \r\n\r\n", 400),
        (b"GET /" + ebucket.encode() + b" HTTP/1.1\r\n" + host.encode() + b"Authorization: Bearer x\r\n\r\n", 400),
        (b"GET /" + ebucket.encode() + b" HTTP/1.1\r\n" + host.encode() +
        "Authorization: AWS4-HMAC-SHA256 Credential=é/x, SignedHeaders=host, Signature=zz\r\n\r\n".encode(), 400),
        (b"GET /" + ebucket.encode() + b"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%FF HTTP/1.1\r\n"
        + host.encode() + b"\r\n", 400),
        (get + b"?AWSAccessKeyId=x&Signature=y&Expires=zzz HTTP/1.1\r\n" + host.encode() + b"\r\n", 403),
        (b"GET /" + ebucket.encode() + b" HTTP/1.1\r\n" + host.encode() + b"x-amz-date: 99999999T999999Z\r\n"
        b"Authorization: AWS4-HMAC-SHA256 Credential=LEOFSTESTROOTKEY0001/20200101/us-east-1/s3/aws4_request, "
        b"SignedHeaders=host;x-amz-date, Signature=" + b"0" * 64 + b"\r\n\r\n", 403),
        (b"GET /" + ebucket.encode() + b"/obj HTTP/1.1\r\n" + host.encode() + b"Range: bytes=\xff\xfe\r\n\r\n", 403),
        (b"GET /" + ebucket.encode() + b"/obj HTTP/1.1\r\n" + host.encode() + b"X-Amz-Meta-\xff: \xfe\r\n\r\n", 400),
    ]
    before = sorted(server.pids())
    failures = []
    for data, status in cases:
        answer = _raw(server, data)
        if not answer or status_of(answer) != status:  # no answer (a reset) is a failure too
            failures.append((data[:120], status, answer[:300]))
    assert not failures, failures
    # the server is alive and serving, and no process died or was replaced meanwhile
    assert server.ping()
    assert request(server, "GET", f"/{ebucket}/obj").body == b"object"
    assert sorted(server.pids()) == before


def test_bad_signature_headers_are_clean_errors(server: LeofsServer, ebucket: str) -> None:
    headers = signed_headers(server, "GET", f"/{ebucket}")
    for mutate in ("Credential=", "SignedHeaders=", "Signature="):
        broken = dict(headers)
        broken["Authorization"] = headers["Authorization"].replace(mutate, mutate.lower() + "x")
        resp = request(server, "GET", f"/{ebucket}", headers=broken, sign=False)
        assert 400 <= resp.status < 500 and resp.code, (mutate, resp.status)
    broken = {k: v for k, v in headers.items() if k.lower() != "x-amz-date"}
    resp = request(server, "GET", f"/{ebucket}", headers=broken, sign=False)
    assert resp.status == 403 and resp.code in ("AccessDenied", "SignatureDoesNotMatch")


def test_server_still_healthy(server: LeofsServer, ebucket: str, s3: Any) -> None:
    assert server.ping()
    assert s3.get_object(Bucket=ebucket, Key="obj")["Body"].read() == b"object"
