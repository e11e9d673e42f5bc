"""Validation of bucket names and object keys (AWS S3 general-purpose bucket rules)."""

from __future__ import annotations

from typing import Final

from leofs.names import is_valid_bucket_name
from leofs.s3.errors import S3Error

#: the longest key S3 accepts, in UTF-8 bytes
MAX_KEY_BYTES: Final = 1024


def validate_bucket_name(name: str) -> None:
    """Raise S3Error InvalidBucketName unless ``name`` follows the general-purpose bucket rules
    (:func:`leofs.names.is_valid_bucket_name`)."""
    if not is_valid_bucket_name(name):
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
