"""Table tests: Range, conditional requests, bucket names and keys."""

from __future__ import annotations

import calendar
import email.utils

import pytest

from leofs.s3.conditions import (
    check_copy_source_conditions,
    check_read_conditions,
    check_write_conditions,
    etag_matches,
    parse_http_date,
)
from leofs.s3.errors import S3Error
from leofs.s3.names import validate_bucket_name, validate_key
from leofs.s3.ranges import parse_range

# -- Range ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=0-0", 1, (0, 0)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=50-1000", 100, (50, 99)),
        ("bytes=99-99", 100, (99, 99)),
        ("Bytes = 1 - 2", 100, (1, 2)),
        # ignored (whole object): syntax errors, multiple ranges, other units
        ("bytes=5-1", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("bytes=-", 100, None),
        ("bytes=a-b", 100, None),
        ("items=0-1", 100, None),
        ("0-1", 100, None),
        ("", 100, None),
        ("bytes=1-2-3", 100, None),
        ("bytes=٣-4", 100, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=0-0", 0),
        ("bytes=-5", 0),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
    ],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(S3Error) as exc:
        parse_range(header, size)
    assert (exc.value.code, exc.value.status) == ("InvalidRange", 416)
    assert exc.value.headers == {"Content-Range": f"bytes */{size}"}


# -- conditional requests ------------------------------------------------------------------------

ETAG = '"5d41402abc4b2a76b9719d911017c592"'
LM = calendar.timegm((2024, 1, 10, 12, 0, 0)) + 0.75  # sub-second part must not matter


def http(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


BEFORE, AT, AFTER = http(LM - 3600), http(int(LM)), http(LM + 3600)


def read_outcome(headers: dict[str, str]) -> int:
    try:
        check_read_conditions(headers, ETAG, LM)
    except S3Error as e:
        assert e.code in ("PreconditionFailed", "NotModified")
        if e.status == 304:
            assert e.headers["ETag"] == ETAG
        return e.status
    return 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"if-match": ETAG}, 200),
        ({"if-match": "5d41402abc4b2a76b9719d911017c592"}, 200),
        ({"if-match": '"other", ' + ETAG}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": '"other"'}, 412),
        ({"if-none-match": ETAG}, 304),
        ({"if-none-match": "W/" + ETAG}, 304),
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": '"other"'}, 200),
        ({"if-modified-since": BEFORE}, 200),
        ({"if-modified-since": AT}, 304),
        ({"if-modified-since": AFTER}, 304),
        ({"if-unmodified-since": BEFORE}, 412),
        ({"if-unmodified-since": AT}, 200),
        ({"if-unmodified-since": AFTER}, 200),
        ({"if-unmodified-since": "not a date"}, 200),
        ({"if-modified-since": "not a date"}, 200),
        # AWS precedence: If-Match true + If-Unmodified-Since false -> 200
        ({"if-match": ETAG, "if-unmodified-since": BEFORE}, 200),
        # If-None-Match false + If-Modified-Since true -> 304
        ({"if-none-match": ETAG, "if-modified-since": BEFORE}, 304),
        # If-None-Match true (no match) + If-Modified-Since false -> 200
        ({"if-none-match": '"other"', "if-modified-since": AFTER}, 200),
        # 412 beats 304
        ({"if-match": '"other"', "if-none-match": ETAG}, 412),
        ({"if-unmodified-since": BEFORE, "if-modified-since": AFTER}, 412),
    ],
)
def test_read_conditions(headers: dict[str, str], status: int) -> None:
    assert read_outcome(headers) == status


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({}, True),
        ({"x-amz-copy-source-if-match": ETAG}, True),
        ({"x-amz-copy-source-if-match": '"nope"'}, False),
        ({"x-amz-copy-source-if-none-match": ETAG}, False),
        ({"x-amz-copy-source-if-none-match": '"nope"'}, True),
        ({"x-amz-copy-source-if-modified-since": BEFORE}, True),
        ({"x-amz-copy-source-if-modified-since": AFTER}, False),
        ({"x-amz-copy-source-if-unmodified-since": BEFORE}, False),
        ({"x-amz-copy-source-if-match": ETAG, "x-amz-copy-source-if-unmodified-since": BEFORE}, True),
        ({"x-amz-copy-source-if-none-match": ETAG, "x-amz-copy-source-if-modified-since": BEFORE}, False),
    ],
)
def test_copy_source_conditions(headers: dict[str, str], ok: bool) -> None:
    if ok:
        check_copy_source_conditions(headers, ETAG, LM)
    else:
        with pytest.raises(S3Error) as exc:
            check_copy_source_conditions(headers, ETAG, LM)
        assert (exc.value.code, exc.value.status) == ("PreconditionFailed", 412)


@pytest.mark.parametrize(
    ("headers", "current", "code"),
    [
        ({}, None, None),
        ({}, ETAG, None),
        ({"if-none-match": "*"}, None, None),
        ({"if-none-match": "*"}, ETAG, "PreconditionFailed"),
        ({"if-match": ETAG}, ETAG, None),
        ({"if-match": ETAG.strip('"')}, ETAG, None),
        ({"if-match": '"x"'}, ETAG, "PreconditionFailed"),
        ({"if-match": ETAG}, None, "NoSuchKey"),
        ({"if-match": "*"}, None, "NoSuchKey"),
        ({"if-match": "*"}, ETAG, None),
    ],
)
def test_write_conditions(headers: dict[str, str], current: str | None, code: str | None) -> None:
    if code is None:
        check_write_conditions(headers, current)
    else:
        with pytest.raises(S3Error) as exc:
            check_write_conditions(headers, current)
        assert exc.value.code == code
        assert exc.value.status == (404 if code == "NoSuchKey" else 412)


def test_http_dates_and_etags() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert parse_http_date("garbage") is None
    assert parse_http_date("") is None
    assert etag_matches('W/"a", "b"', '"a"')
    assert not etag_matches('"ab"', '"a"')
    assert not etag_matches("", '"a"')


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["abc", "my-bucket", "my.bucket.name", "a" * 63, "0bucket9", "b-1.2-3", "xn-ok", "a-s3alias-b"],
)
def test_valid_bucket_names(name: str) -> None:
    validate_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "",
        "MyBucket",
        "my_bucket",
        "-bucket",
        "bucket-",
        ".bucket",
        "bucket.",
        "my..bucket",
        "foo.-bar",
        "foo-.bar",
        "192.168.5.4",
        "xn--bucket",
        "sthree-bucket",
        "amzn-s3-demo-bucket",
        "bucket-s3alias",
        "bucket--ol-s3",
        "bucket--x-s3",
        "bücket",
        "bucket name",
        "bucket/x",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(S3Error) as exc:
        validate_bucket_name(name)
    assert exc.value.code == "InvalidBucketName"


def test_keys() -> None:
    for key in ("a", "a/b//c", "../x", "é" * 512, "x" * 1024, " lead and trail ", "%2F+?#", "\n\r\t"):
        validate_key(key)
    with pytest.raises(S3Error) as exc:
        validate_key("x" * 1025)
    assert exc.value.code == "KeyTooLongError"
    with pytest.raises(S3Error) as exc:
        validate_key("é" * 513)  # 1026 bytes
    assert exc.value.code == "KeyTooLongError"
    for bad, code in (("", "InvalidArgument"), ("a\x00b", "InvalidArgument"), ("\udcff", "InvalidURI")):
        with pytest.raises(S3Error) as exc:
            validate_key(bad)
        assert exc.value.code == code
