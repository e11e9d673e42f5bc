"""Validation of bucket names and object keys (AWS S3 general-purpose bucket rules)."""

from __future__ import annotations

import re
from typing import Final

from leofs.s3.errors import S3Error

_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE: Final = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")

#: the longest key S3 accepts, in UTF-8 bytes
MAX_KEY_BYTES: Final = 1024


def validate_bucket_name(name: str) -> None:
    """Raise S3Error InvalidBucketName unless ``name`` follows the general-purpose bucket rules.

    3-63 characters of lower-case letters, digits, '.' and '-'; starts and ends with a letter or
    digit; no '..'; not formatted as an IPv4 address; none of the reserved prefixes (``xn--``,
    ``sthree-``, ``amzn-s3-demo-``) or suffixes (``-s3alias``, ``--ol-s3``, ``--x-s3``,
    ``--table-s3``).
    """
    ok = (
        _BUCKET_RE.fullmatch(name) is not None
        and ".." not in name
        and _IPV4_RE.fullmatch(name) is None
        and not name.startswith(_RESERVED_PREFIXES)
        and not name.endswith(_RESERVED_SUFFIXES)
    )
    if not ok:
        raise S3Error("InvalidBucketName", BucketName=name)


def validate_key(key: str) -> None:
    """Raise an S3Error unless ``key`` is a usable object key.

    An empty key is InvalidArgument (S3 cannot address it: ``PUT /bucket/`` is CreateBucket, and
    DeleteObjects reports it per key); a key that is not valid UTF-8 (lone surrogates from a bad
    percent-escape) is InvalidURI; one over 1024 UTF-8 bytes is KeyTooLongError. NUL is rejected
    as InvalidArgument: no client can round-trip it through XML listings.
    """
    if not key:
        raise S3Error("InvalidArgument", "Object key must not be empty.")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=str(len(encoded)), MaxSizeAllowed=str(MAX_KEY_BYTES))
    if "\x00" in key:
        raise S3Error("InvalidArgument", "Object key must not contain NUL characters.")
