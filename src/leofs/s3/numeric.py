"""Decimal numbers from request headers and query parameters, bounded before they are parsed.

``int()`` accepts more than S3 does (signs, '_', spaces, non-ASCII digits such as '²' for
``isdigit()``) and raises on more than 4300 digits: every number taken from a request goes
through here, so a bad one is a clear 400, never an unexpected exception (a 500).
"""

from __future__ import annotations

from typing import Final

from leofs.s3.errors import S3Error

#: more digits than any size, offset, count or time S3 handles (2**63 has 19)
MAX_DIGITS: Final = 18


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits."""
    return text.isascii() and text.isdigit()


def decimal(text: str, *, saturate: int | None = None) -> int | None:
    """The value of an ASCII digit string, or None when ``text`` is not one.

    Leading zeros do not count towards the length. A value of more than :data:`MAX_DIGITS`
    digits is None, or ``saturate`` when given (for offsets, where "huge" has a meaning).
    """
    if not is_decimal(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        return saturate
    return int(digits)


def bounded(text: str, name: str, low: int, high: int, message: str | None = None) -> int:
    """``text`` as an integer in [low, high]; InvalidArgument (naming ``name``) otherwise."""
    value = decimal(text.strip())
    if value is None or not low <= value <= high:
        raise S3Error("InvalidArgument", message or f"Argument {name} must be an integer between {low} and {high}",
                      ArgumentName=name, ArgumentValue=text[:256])
    return value
