"""Fuzz the other parsers of request headers and targets: checksums and Content-MD5, and the
router's addressing (Host, path, query -> bucket, key, operation)."""

from __future__ import annotations

import base64

from hypothesis import example, given
from hypothesis import strategies as st

from leofs.gateway.context import parse_query, split_target
from leofs.gateway.router import Op, resolve_operation, resolve_target
from leofs.s3.checksums import DIGEST_SIZES, Checksum, checksum_from_headers, decode_b64_digest, parse_content_md5
from leofs.s3.errors import S3Error
from tests.fuzz.profile import assert_client_error, fuzz, wire_text

_ALGS = st.one_of(st.sampled_from([*sorted(DIGEST_SIZES), "crc32", "md5", "ß", "ﬀ", ""]), wire_text(10))
_B64 = st.one_of(wire_text(60), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))


@fuzz()
@given(algorithm=_ALGS, value=_B64)
def test_checksum_values(algorithm: str, value: str) -> None:
    try:
        raw = decode_b64_digest(algorithm, value)
    except S3Error as err:
        assert_client_error(err, {"InvalidRequest"})
        return
    assert len(raw) == DIGEST_SIZES[algorithm.upper()]
    Checksum(algorithm).update(raw)


@fuzz()
@given(headers=st.dictionaries(st.sampled_from([f"x-amz-checksum-{a.lower()}" for a in DIGEST_SIZES] + ["x"]), _B64),
       md5=_B64)
def test_checksum_headers_and_content_md5(headers: dict[str, str], md5: str) -> None:
    try:
        found = checksum_from_headers(headers)
    except S3Error as err:
        assert_client_error(err, {"InvalidRequest"})
    else:
        assert found is None or found[0] in DIGEST_SIZES
    try:
        assert len(parse_content_md5(md5)) == 16
    except S3Error as err:
        assert_client_error(err, {"InvalidDigest"})


@fuzz()
@given(target=wire_text(120), host=st.one_of(wire_text(40), st.sampled_from(["b.s3.example.com", "[::1]:80",
                                                                             "127.0.0.1:8080", "a.b:1:2"])),
       method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "get"]),
       headers=st.dictionaries(st.sampled_from(["x-amz-copy-source", "content-type"]), wire_text(10)))
@example(target="/fz/a", host="127.0.0.\udcff1:37107", method="HEAD", headers={})  # a 500 once
def test_addressing(target: str, host: str, method: str, headers: dict[str, str]) -> None:
    path, query = split_target(target)
    params = parse_query(query)
    try:
        bucket, key, _ = resolve_target(host, path, ["s3.example.com"])
        op = resolve_operation(method, bucket, key, params, headers)
    except S3Error as err:
        assert_client_error(err, {"InvalidURI", "InvalidBucketName", "MethodNotAllowed", "NotImplemented"})
        return
    assert isinstance(op, Op)
    if bucket is not None:
        bucket.encode("utf-8")  # the user store (SQLite) can look it up
    assert bucket is not None or op is Op.ListBuckets
