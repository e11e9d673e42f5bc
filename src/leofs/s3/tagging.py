"""Tag sets (object and bucket tagging): the ``<Tagging>`` document, the ``x-amz-tagging`` header
form, and AWS's limits on both (400 InvalidTag)."""

from __future__ import annotations

import unicodedata
from typing import Final
from urllib.parse import parse_qsl

from leofs.s3.errors import S3Error
from leofs.s3.responses import document, elem
from leofs.s3.xmlparse import parse_tagging

#: AWS's limits: tags per object / per bucket, characters per key and per value
MAX_OBJECT_TAGS: Final = 10
MAX_BUCKET_TAGS: Final = 50
MAX_KEY_CHARS: Final = 128
MAX_VALUE_CHARS: Final = 256
#: besides letters, digits and white space (any script), what a tag key or value may hold
_PUNCTUATION: Final = frozenset("_.:/=+-@")

TagSet = list[tuple[str, str]]


def tags_from_xml(body: bytes, *, limit: int = MAX_OBJECT_TAGS) -> TagSet:
    """The tag set of a Put*Tagging body, checked (MalformedXML, InvalidTag)."""
    return checked(parse_tagging(body), limit=limit)


def tags_from_header(value: str) -> TagSet:
    """The tag set of an ``x-amz-tagging`` header (URL query form ``k1=v1&k2=v2``), checked."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded "
            "URL query parameters without tag name duplicates.",
            ArgumentName="x-amz-tagging",
        ) from None
    return checked(pairs, limit=MAX_OBJECT_TAGS)


def checked(tags: TagSet, *, limit: int) -> TagSet:
    """``tags`` if they keep AWS's limits, else 400 InvalidTag naming the first broken rule."""
    if len(tags) > limit:
        raise S3Error("InvalidTag", f"Object tags cannot be greater than {limit}")
    seen: set[str] = set()
    for key, value in tags:
        if key in seen:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key)
        seen.add(key)
        if not 1 <= len(key) <= MAX_KEY_CHARS or not _allowed(key):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid", TagKey=key)
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", TagKey=key)
        if len(value) > MAX_VALUE_CHARS or not _allowed(value):
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid", TagKey=key)
    return tags


def _allowed(text: str) -> bool:
    # letters, digits and separators (Unicode L*, N*, Z*; not control characters such as a newline)
    return all(c.isalnum() or c in _PUNCTUATION or unicodedata.category(c)[0] == "Z" for c in text)


def tagging_document(tags: TagSet) -> bytes:
    """The ``<Tagging>`` document of Get*Tagging."""
    items = "".join(f"<Tag>{elem('Key', k)}{elem('Value', v)}</Tag>" for k, v in tags)
    return document("Tagging", f"<TagSet>{items}</TagSet>")
