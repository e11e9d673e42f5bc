"""The HTTP Range header as S3 serves it: one ``bytes=`` range, else the whole object."""

from __future__ import annotations

import re
from typing import Final

from leofs.s3.errors import S3Error
from leofs.s3.numeric import MAX_DIGITS, decimal

#: what a position of more digits than any object size stands for: past every object's end
_HUGE: Final = 10**MAX_DIGITS

_RANGE_RE: Final = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE | re.ASCII)


def _unsatisfiable(header: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        headers={"Content-Range": f"bytes */{size}"},
        RangeRequested=header.strip(),
        ActualObjectSize=str(size),
    )


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Resolve a Range header against an object of ``size`` bytes.

    Returns the inclusive (start, end) to serve with 206, or None when the whole object is to be
    served with 200: S3 ignores a header that is syntactically invalid or asks for several ranges.
    An unsatisfiable range (first byte at or past the end, a zero suffix, any range of an empty
    object) raises S3Error InvalidRange (416) with ``Content-Range: bytes */size``. An end past
    the last byte is clamped.
    """
    m = _RANGE_RE.fullmatch(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        n = _position(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - n), size - 1
    start = _position(first)
    if last:
        end = _position(last)
        if end < start:
            return None  # invalid byte-range-spec: ignored
    else:
        end = size - 1
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    value = decimal(digits, saturate=_HUGE)
    assert value is not None  # the pattern matched digits only
    return value
