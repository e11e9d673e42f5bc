"""Request bodies against a real server: Expect: 100-continue after auth, Content-MD5,
x-amz-content-sha256 (digest, UNSIGNED, signed streaming with chunk signatures, trailers),
HTTP-chunked bodies, flexible checksums in headers and trailers, truncated bodies."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from typing import Any

import botocore.httpchecksum
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.s3_helpers import (
    EMPTY_SHA256,
    read_response,
    request,
    seed_signature,
    signed_chunks,
    signed_headers,
    status_of,
    unsigned_chunks,
)
from tests.support.servers import ROOT_SECRET_KEY, LeofsServer

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
WHEN_REQUIRED = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}


def _checksum(algorithm: str, data: bytes) -> str:
    c = botocore.httpchecksum._CHECKSUM_CLS[algorithm.lower()]()
    c.update(data)
    return str(c.b64digest())


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _exists(server: LeofsServer, bucket: str, key: str) -> bool:
    return request(server, "HEAD", f"/{bucket}/{key}").status == 200


def _puts_finished(server: LeofsServer) -> float:
    """PutObject requests the server has finished handling (any status), from its metrics."""
    resp = request(server, "GET", "/_leofs_adm/metrics", sign=False)
    assert resp.status == 200, resp.body[:300]
    return sum(float(line.rsplit(" ", 1)[1]) for line in resp.body.decode().splitlines()
               if line.startswith('leofs_s3_requests_total{operation="PutObject",'))  # fmt: skip


def _wait_put_finished(server: LeofsServer, before: float) -> None:
    """Poll until the server has finished one more PUT than ``before`` (generous bound)."""
    deadline = time.monotonic() + 30
    while _puts_finished(server) < before + 1:
        assert time.monotonic() < deadline, "the server never finished the truncated PUT"
        time.sleep(0.05)


def _wire(method: str, path: str, headers: dict[str, str]) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


# -- Expect: 100-continue --------------------------------------------------------------------------
def test_expect_answered_after_auth(server: LeofsServer, bucket: str) -> None:
    body = b"x" * 5000
    good = signed_headers(server, "PUT", f"/{bucket}/exp", body=body,
                          headers={"Content-Length": str(len(body)), "Expect": "100-continue"})
    bad = signed_headers(server, "PUT", f"/{bucket}/exp-bad", body=body, secret_key="wrong-secret",
                         headers={"Content-Length": str(len(body)), "Expect": "100-continue"})
    # wrong signature: the error comes without the body ever being sent, and the connection closes
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/exp-bad", bad))
        answer = read_response(sock)
        assert status_of(answer) == 403 and b"SignatureDoesNotMatch" in answer
        assert b"x-amz-request-id" in answer.lower()
    assert not _exists(server, bucket, "exp-bad")
    # good signature: 100 Continue, then the final answer once the body arrived
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/exp", good))
        interim = read_response(sock)
        assert status_of(interim) == 100
        sock.sendall(body)
        final = read_response(sock)
        assert status_of(final) == 200, final
    assert request(server, "GET", f"/{bucket}/exp").body == body
    # a missing bucket is also refused before the body
    nob = signed_headers(server, "PUT", "/no-such-bucket-exp/k", body=body,
                         headers={"Content-Length": str(len(body)), "Expect": "100-continue"})
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_wire("PUT", "/no-such-bucket-exp/k", nob))
        assert status_of(read_response(sock)) == 404


# -- digests -------------------------------------------------------------------------------------
def test_content_md5(s3: Any, bucket: str) -> None:
    data = b"md5 checked"
    s3.put_object(Bucket=bucket, Key="ok", Body=data, ContentMD5=_md5_b64(data))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ContentMD5=_md5_b64(b"other"))
    assert exc.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ContentMD5="not-base64!")
    assert exc.value.response["Error"]["Code"] == "InvalidDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_content_sha256(server: LeofsServer, bucket: str) -> None:
    data = b"sha256 checked"
    resp = request(server, "PUT", f"/{bucket}/sha", body=data)
    assert resp.status == 200
    resp = request(server, "PUT", f"/{bucket}/sha-bad", body=data, payload=hashlib.sha256(b"other").hexdigest())
    assert resp.status == 400 and resp.code == "XAmzContentSHA256Mismatch"
    assert not _exists(server, bucket, "sha-bad")
    resp = request(server, "PUT", f"/{bucket}/unsigned", body=data, payload="UNSIGNED-PAYLOAD")
    assert resp.status == 200
    assert request(server, "GET", f"/{bucket}/unsigned").body == data
    resp = request(server, "PUT", f"/{bucket}/bogus", body=data, payload="NOT-A-MODE")
    assert 400 <= resp.status < 500


# -- aws-chunked -----------------------------------------------------------------------------------
def _streaming_put(server: LeofsServer, path: str, data: bytes, *, mode: str, chunk: int = 65536,
                   trailer: tuple[str, str] | None = None, tamper: int | None = None,
                   extra: dict[str, str] | None = None, cut: int = 0) -> tuple[int, bytes]:
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)), **(extra or {})}
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    # Content-Length is known once the body is built, and it is signed: build twice
    probe = signed_headers(server, "PUT", path, headers={**headers, "Content-Length": "0"}, payload=mode)
    if mode.startswith("STREAMING-AWS4"):
        body = signed_chunks(data, chunk, seed_signature="0" * 64, amz_date=probe["X-Amz-Date"],
                             secret=ROOT_SECRET_KEY, trailer=trailer)
    else:
        body = unsigned_chunks(data, chunk, dict([trailer]) if trailer else None)
    headers["Content-Length"] = str(len(body))
    signed = signed_headers(server, "PUT", path, headers=headers, payload=mode)
    if mode.startswith("STREAMING-AWS4"):
        body = signed_chunks(data, chunk, seed_signature=seed_signature(signed), amz_date=signed["X-Amz-Date"],
                             secret=ROOT_SECRET_KEY, trailer=trailer, tamper=tamper)
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(_wire("PUT", path, signed))
        sock.sendall(body[: len(body) - cut] if cut else body)
        if cut:
            sock.shutdown(socket.SHUT_WR)
        answer = read_response(sock)
    return (status_of(answer) if answer else 0), answer


def test_streaming_signed_payload(server: LeofsServer, bucket: str) -> None:
    data = os.urandom(200_000)
    status, answer = _streaming_put(server, f"/{bucket}/sig", data, mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    assert status == 200, answer
    got = request(server, "GET", f"/{bucket}/sig")
    assert got.body == data
    assert got.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert "Content-Encoding" not in got.headers
    # a forged chunk signature (chunk 1 of 4) is refused and nothing is stored
    status, answer = _streaming_put(server, f"/{bucket}/sig-bad", data, mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                    tamper=1)
    assert status == 403 and b"SignatureDoesNotMatch" in answer
    assert not _exists(server, bucket, "sig-bad")
    # an empty body: only the final zero chunk
    status, _ = _streaming_put(server, f"/{bucket}/sig-empty", b"", mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    assert status == 200 and request(server, "GET", f"/{bucket}/sig-empty").body == b""


def test_streaming_signed_trailer(server: LeofsServer, bucket: str) -> None:
    data = os.urandom(150_000)
    crc = ("x-amz-checksum-crc32c", _checksum("CRC32C", data))
    status, answer = _streaming_put(server, f"/{bucket}/st", data, mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                    trailer=crc)
    assert status == 200, answer
    assert request(server, "GET", f"/{bucket}/st").body == data
    head = request(server, "HEAD", f"/{bucket}/st", headers={"x-amz-checksum-mode": "ENABLED"})
    assert head.headers["x-amz-checksum-crc32c"] == crc[1]
    wrong = ("x-amz-checksum-crc32c", _checksum("CRC32C", b"other"))
    status, answer = _streaming_put(server, f"/{bucket}/st-bad", data,
                                    mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", trailer=wrong)
    assert status == 400 and b"<Code>BadDigest</Code>" in answer, answer  # signed correctly: only the sum is wrong
    assert not _exists(server, bucket, "st-bad")


def test_streaming_unsigned_trailer(server: LeofsServer, bucket: str) -> None:
    data = os.urandom(300_000)
    for alg in ALGORITHMS:
        trailer = (f"x-amz-checksum-{alg.lower()}", _checksum(alg, data))
        status, answer = _streaming_put(server, f"/{bucket}/ut-{alg}", data,
                                        mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer=trailer,
                                        extra={"x-amz-sdk-checksum-algorithm": alg})
        assert status == 200, answer
        head = request(server, "HEAD", f"/{bucket}/ut-{alg}", headers={"x-amz-checksum-mode": "ENABLED"})
        assert head.headers[trailer[0]] == trailer[1]
        assert request(server, "GET", f"/{bucket}/ut-{alg}").body == data
    bad = ("x-amz-checksum-crc32", _checksum("CRC32", b"nope"))
    status, answer = _streaming_put(server, f"/{bucket}/ut-bad", data, mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                    trailer=bad)
    assert status == 400 and b"BadDigest" in answer
    assert not _exists(server, bucket, "ut-bad")


def test_http_chunked_without_content_length(server: LeofsServer, bucket: str) -> None:
    data = os.urandom(100_000)
    # plain HTTP chunking (no aws-chunked), payload signed by its digest
    headers = signed_headers(server, "PUT", f"/{bucket}/hc", body=data, headers={"Transfer-Encoding": "chunked"})
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/hc", headers))
        for i in range(0, len(data), 7000):
            piece = data[i:i + 7000]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        assert status_of(read_response(sock)) == 200
    assert request(server, "GET", f"/{bucket}/hc").body == data
    # aws-chunked inside HTTP chunking, as botocore sends over https
    inner = unsigned_chunks(data, 65536, {"x-amz-checksum-crc32": _checksum("CRC32", data)})
    headers = signed_headers(server, "PUT", f"/{bucket}/hc2", payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers={
        "Transfer-Encoding": "chunked", "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data))})
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/hc2", headers))
        for i in range(0, len(inner), 10000):
            piece = inner[i:i + 10000]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        assert status_of(read_response(sock)) == 200
    assert request(server, "GET", f"/{bucket}/hc2").body == data


# -- flexible checksums through boto3 ---------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_header_boto3(s3: Any, bucket: str, algorithm: str) -> None:
    data = os.urandom(70_000)
    put = s3.put_object(Bucket=bucket, Key="ck", Body=data, ChecksumAlgorithm=algorithm)
    field = "Checksum" + algorithm
    assert put[field] == _checksum(algorithm, data)
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got[field] == put[field]
    head = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert head[field] == put[field]
    ranged = s3.get_object(Bucket=bucket, Key="ck", Range="bytes=0-99", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == data[:100]
    assert not any(k.startswith("x-amz-checksum-") for k in ranged["ResponseMetadata"]["HTTPHeaders"])
    # boto3 (when_supported) always sends x-amz-checksum-mode; without it, no checksum comes back
    plain = make_client(s3.meta.endpoint_url, **WHEN_REQUIRED).get_object(Bucket=bucket, Key="ck")
    assert field not in plain


def test_checksum_header_mismatch(server: LeofsServer, bucket: str) -> None:
    data = b"checksum mismatch"
    for alg in ALGORITHMS:
        name = f"x-amz-checksum-{alg.lower()}"
        resp = request(server, "PUT", f"/{bucket}/mm", body=data, headers={name: _checksum(alg, b"different")})
        assert resp.status == 400 and resp.code == "BadDigest", (alg, resp.body)
        resp = request(server, "PUT", f"/{bucket}/mm", body=data, headers={name: _checksum(alg, data)})
        assert resp.status == 200 and resp.headers[name] == _checksum(alg, data)
    resp = request(server, "PUT", f"/{bucket}/mm2", body=data, headers={"x-amz-checksum-crc32": "!!notb64"})
    assert resp.status == 400
    assert not _exists(server, bucket, "mm2")


@pytest.mark.parametrize("config", ["default", "when_required"])
def test_trailer_checksums_over_https(tls_server: LeofsServer, ca_bundle: str, config: str) -> None:
    c = make_client(tls_server.endpoint, verify=ca_bundle, **(WHEN_REQUIRED if config == "when_required" else {}))
    name = f"tls-{config.replace('_', '-')}-{os.getpid()}"
    c.create_bucket(Bucket=name)
    data = os.urandom(3 * 1024 * 1024 + 17)
    for alg in ALGORITHMS:
        put = c.put_object(Bucket=name, Key=f"t-{alg}", Body=data, ChecksumAlgorithm=alg)
        assert put["Checksum" + alg] == _checksum(alg, data)
        got = c.get_object(Bucket=name, Key=f"t-{alg}", ChecksumMode="ENABLED")
        assert got["Body"].read() == data and got["Checksum" + alg] == put["Checksum" + alg]
    # boto3's default upload (CRC32 trailer over TLS) and a large, chunked object
    big = os.urandom(7 * 1024 * 1024)
    c.upload_fileobj(__import__("io").BytesIO(big), name, "big")
    assert c.get_object(Bucket=name, Key="big")["Body"].read() == big
    ranged = c.get_object(Bucket=name, Key="big", Range="bytes=100-199", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == big[100:200]
    listed = c.list_objects_v2(Bucket=name)
    assert {o["Key"] for o in listed["Contents"]} == {f"t-{a}" for a in ALGORITHMS} | {"big"}


# -- truncated bodies ----------------------------------------------------------------------------------
def test_truncated_plain_body(server: LeofsServer, bucket: str) -> None:
    headers = signed_headers(server, "PUT", f"/{bucket}/trunc", payload="UNSIGNED-PAYLOAD",
                             headers={"Content-Length": "100000"})
    before = _puts_finished(server)
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(_wire("PUT", f"/{bucket}/trunc", headers) + b"y" * 1000)
        sock.shutdown(socket.SHUT_WR)
        answer = read_response(sock)  # never a hang
    # the client half-closed: aiohttp closes the connection at that EOF, so there is no one to answer
    assert answer == b"", answer
    _wait_put_finished(server, before)  # the server gave up the request ...
    assert not _exists(server, bucket, "trunc")  # ... and stored nothing


@pytest.mark.parametrize("mode", ["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
def test_truncated_aws_chunked(server: LeofsServer, bucket: str, mode: str) -> None:
    data = os.urandom(100_000)
    trailer = ("x-amz-checksum-crc32", _checksum("CRC32", data)) if "TRAILER" in mode else None
    before = _puts_finished(server)
    status, answer = _streaming_put(server, f"/{bucket}/tc", data, mode=mode, trailer=trailer, cut=30_000)
    assert (status, answer) == (0, b""), answer  # half-closed: no answer (see test_truncated_plain_body)
    _wait_put_finished(server, before)
    assert not _exists(server, bucket, "tc")


def test_decoded_length_mismatch(server: LeofsServer, bucket: str) -> None:
    data = os.urandom(5000)
    status, answer = _streaming_put(server, f"/{bucket}/dl", data, mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                    trailer=("x-amz-checksum-crc32", _checksum("CRC32", data)),
                                    extra={"x-amz-decoded-content-length": "6000"})
    assert status == 400, answer
    assert not _exists(server, bucket, "dl")


def test_malformed_aws_chunked(server: LeofsServer, bucket: str) -> None:
    for garbage in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"\r\n\r\n\r\n\r\n"):
        headers = signed_headers(server, "PUT", f"/{bucket}/mal", payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                 headers={"Content-Encoding": "aws-chunked", "Content-Length": str(len(garbage)),
                                          "x-amz-decoded-content-length": "3"})
        with socket.create_connection((server.host, server.port), timeout=20) as sock:
            sock.sendall(_wire("PUT", f"/{bucket}/mal", headers) + garbage)
            answer = read_response(sock)
        assert answer and status_of(answer) == 400, answer
    assert not _exists(server, bucket, "mal")


def test_empty_sha256_body(server: LeofsServer, bucket: str) -> None:
    resp = request(server, "PUT", f"/{bucket}/empty", payload=EMPTY_SHA256)
    assert resp.status == 200
    assert request(server, "GET", f"/{bucket}/empty").body == b""


def test_connection_reusable_after_refused_expect(s3: Any, bucket: str) -> None:
    """A PUT refused at Expect time (no body sent) must not poison the kept-alive connection."""
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=f"{bucket}-missing", Key="k", Body=b"z" * 1000)
        assert exc.value.response["Error"]["Code"] == "NoSuchBucket"
        assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
        s3.put_object(Bucket=bucket, Key="after", Body=b"fine")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"fine"
