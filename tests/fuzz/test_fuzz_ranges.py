"""Fuzz the Range header parser: a range inside the object, None (serve it whole), or 416."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leofs.s3.errors import S3Error
from leofs.s3.ranges import parse_range
from tests.fuzz.profile import assert_client_error, fuzz, wire_text

_NUMBER = st.one_of(st.just(""), st.integers(0, 10**20).map(str), st.integers(0, 64).map(lambda n: "0" * n + "7"))
_SPACE = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def range_headers(draw: st.DrawFn) -> str:
    """Mostly well-formed ``bytes=a-b`` headers, with odd spacing, case, and extra ranges."""
    unit = draw(st.sampled_from(["bytes", "BYTES", "Bytes", "byte", "items", ""]))
    first, last = draw(_NUMBER), draw(_NUMBER)
    s = [draw(_SPACE) for _ in range(5)]
    header = f"{s[0]}{unit}{s[1]}={s[2]}{first}{s[3]}-{s[4]}{last}"
    if draw(st.booleans()):
        header += draw(st.sampled_from([",0-1", ", 5-", ",-3", ",", ";", "-", "x"]))
    return header


def check(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except S3Error as err:
        assert_client_error(err, {"InvalidRange"})
        assert err.headers["Content-Range"] == f"bytes */{size}"
        return
    if result is not None:
        start, end = result
        assert 0 <= start <= end < size


@fuzz()
@given(header=st.one_of(range_headers(), wire_text()), size=st.integers(0, 2**63))
def test_range_is_served_whole_partly_or_refused(header: str, size: int) -> None:
    check(header, size)


@fuzz()
@given(first=st.integers(0, 10**6), last=st.integers(0, 10**6), size=st.integers(1, 10**6))
def test_range_matches_http_semantics(first: int, last: int, size: int) -> None:
    # RFC 9110: an end past the last byte is clamped; an end before the start is ignored.
    try:
        result = parse_range(f"bytes={first}-{last}", size)
    except S3Error:
        assert first >= size and last >= first
        return
    if last < first:
        assert result is None
    else:
        assert result == (first, min(last, size - 1))


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000])
def test_range_with_5000_digits(header: str) -> None:
    # found by the fuzzer: Python's int-digit limit raised ValueError inside the parser (a 500)
    check(header, 1000)
