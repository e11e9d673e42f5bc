"""Fuzz the conditional-request headers and HTTP dates: 412, 304, 404 or serve, nothing else."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from leofs.s3.conditions import (
    check_copy_source_conditions,
    check_read_conditions,
    check_write_conditions,
    etag_matches,
    parse_http_date,
)
from leofs.s3.errors import S3Error
from tests.fuzz.profile import assert_client_error, fuzz, wire_text

ETAG = "0123456789abcdef0123456789abcdef"
_DATES = st.one_of(
    wire_text(40),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.sampled_from(["Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 -2359", "Sun, 06 Nov 1994 08:49:37",
                     "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "31 Dec 9999 23:59:59 -0001",
                     "1 Jan 0 0:0:0 +0000", "Thu, 01 Jan 1970 00:00:00 +9999"]),
)
_TAGS = st.one_of(wire_text(40), st.sampled_from(["*", f'"{ETAG}"', f'W/"{ETAG}"', f'"x", "{ETAG}"', ",", '""']))


@fuzz()
@given(value=_DATES)
@example(value="Fri, 31 Dec 9999 23:59:59 -0001")  # past datetime.max once the offset applies
def test_http_dates(value: str) -> None:
    parsed = parse_http_date(value)
    assert parsed is None or isinstance(parsed, int)


@fuzz()
@given(headers=st.dictionaries(st.sampled_from(["if-match", "if-none-match", "if-modified-since",
                                                 "if-unmodified-since"]), st.one_of(_TAGS, _DATES)),
       modified=st.floats(0, 253402300799, allow_nan=False))  # stored times: up to 9999
def test_read_conditions(headers: dict[str, str], modified: float) -> None:
    try:
        check_read_conditions(headers, ETAG, modified)
    except S3Error as err:
        assert_client_error(err, {"PreconditionFailed", "NotModified"})
        if err.code == "NotModified":
            assert err.status == 304 and err.headers["ETag"] == f'"{ETAG}"'
    copy = {f"x-amz-copy-source-{k}": v for k, v in headers.items()}
    try:
        check_copy_source_conditions(copy, ETAG, modified)
    except S3Error as err:
        assert_client_error(err, {"PreconditionFailed"})


@fuzz()
@given(headers=st.dictionaries(st.sampled_from(["if-match", "if-none-match"]), _TAGS),
       current=st.one_of(st.none(), st.just(ETAG)))
def test_write_conditions(headers: dict[str, str], current: str | None) -> None:
    try:
        check_write_conditions(headers, current)
    except S3Error as err:
        assert_client_error(err, {"PreconditionFailed", "NoSuchKey"})
        return
    if "if-match" in headers:
        assert current is not None and etag_matches(headers["if-match"], current)
