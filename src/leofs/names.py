"""Bucket-name rules (AWS S3 general-purpose buckets), shared by the S3 front and the manager.

Pure: no project imports. ``leofs.s3.names`` turns a refusal into the S3 error; the manager's admin
API into its own.
"""

from __future__ import annotations

import re
from typing import Final

_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE: Final = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")

#: what the refusal of a bad bucket name says (S3's InvalidBucketName message)
INVALID_BUCKET_NAME: Final = "The specified bucket is not valid."


def is_valid_bucket_name(name: str) -> bool:
    """Whether ``name`` follows the general-purpose bucket rules.

    3-63 characters of lower-case letters, digits, '.' and '-'; starts and ends with a letter or
    digit; no '..', '.-' or '-.' (a label may not start or end with a hyphen); not formatted as an
    IPv4 address; none of the reserved prefixes (``xn--``,
    ``sthree-``, ``amzn-s3-demo-``) or suffixes (``-s3alias``, ``--ol-s3``, ``--x-s3``,
    ``--table-s3``).
    """
    return (
        _BUCKET_RE.fullmatch(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and _IPV4_RE.fullmatch(name) is None
        and not name.startswith(_RESERVED_PREFIXES)
        and not name.endswith(_RESERVED_SUFFIXES)
    )
