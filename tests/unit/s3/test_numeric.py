"""Bounded number parsing (s3/numeric.py) and the Range parser: any input gives a value, None or an
S3Error, never another exception (Python's int() raises past 4300 digits)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leofs.s3.errors import S3Error
from leofs.s3.numeric import bounded, decimal
from leofs.s3.ranges import parse_range

HUGE = "9" * 5000


def test_decimal() -> None:
    assert decimal("0") == 0
    assert decimal("000123") == 123
    assert decimal("0" * 5000 + "7") == 7
    assert decimal(HUGE) is None
    assert decimal(HUGE, saturate=-1) == -1
    for bad in ("", "-1", "+1", " 1", "1_000", "²", "١٢", "0x10", "1.0"):
        assert decimal(bad) is None, bad


def test_bounded() -> None:
    assert bounded("10000", "partNumber", 1, 10000) == 10000
    for bad in ("0", "10001", HUGE, "²", "", "abc"):
        with pytest.raises(S3Error) as exc:
            bounded(bad, "partNumber", 1, 10000)
        assert exc.value.code == "InvalidArgument" and exc.value.status == 400
        assert len(exc.value.extra["ArgumentValue"]) <= 256


@pytest.mark.parametrize(("header", "expected"), [
    (f"bytes=0-{HUGE}", (0, 9)),           # an end past the last byte is clamped
    (f"bytes=-{HUGE}", (0, 9)),            # a suffix longer than the object is the whole object
    (f"bytes={'0' * 5000}3-4", (3, 4)),    # leading zeros are only zeros
    ("bytes=5-2", None),                   # invalid: ignored, 200
    ("bytes=²-3", None),
])
def test_range_values(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}", "bytes=10-", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(S3Error) as exc:
        parse_range(header, 10)
    assert exc.value.code == "InvalidRange" and exc.value.status == 416


@given(st.text(max_size=64) | st.from_regex(r"bytes=[0-9]{0,6000}-[0-9]{0,6000}", fullmatch=True),
       st.integers(min_value=0, max_value=2**45))
def test_range_never_raises_anything_else(header: str, size: int) -> None:
    try:
        got = parse_range(header, size)
    except S3Error as err:
        assert err.code == "InvalidRange"
        return
    if got is not None:
        start, end = got
        assert 0 <= start <= end < size


@given(st.text(max_size=40) | st.from_regex(r"[0-9]{0,5000}", fullmatch=True))
def test_decimal_never_raises(text: str) -> None:
    value = decimal(text)
    assert value is None or (0 <= value < 10**18 and text.isascii() and text.isdigit())
