"""Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since.

Precedence follows the S3 API reference (GetObject, HeadObject, CopyObject, PutObject) and
RFC 7232 section 6: the 412 conditions are evaluated before the 304 ones; a present If-Match
overrides If-Unmodified-Since and a present If-None-Match overrides If-Modified-Since.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping

from leofs.s3.errors import S3Error

_HTTP_DATE_FORMATS = (
    "%a, %d %b %Y %H:%M:%S GMT",  # IMF-fixdate (RFC 7231)
    "%A, %d-%b-%y %H:%M:%S GMT",  # obsolete RFC 850
    "%a %b %d %H:%M:%S %Y",  # asctime
)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP date (RFC 7231 formats), or None when unparsable."""
    value = value.strip()
    for fmt in _HTTP_DATE_FORMATS:
        try:
            parsed = dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        return int(parsed.replace(tzinfo=dt.UTC).timestamp())
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return int(parsed.timestamp())
    except (OverflowError, ValueError, OSError):
        return None


def _normalize_etag(tag: str) -> str:
    tag = tag.strip()
    if tag[:2] in ("W/", "w/"):
        tag = tag[2:].strip()
    if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
        tag = tag[1:-1]
    return tag


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match/If-None-Match value (``*`` or a comma list) matches ``etag``.

    Quotes and the weak ``W/`` prefix are ignored on both sides.
    """
    want = _normalize_etag(etag)
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        if tag and _normalize_etag(tag) == want:
            return True
    return False


def _quoted(etag: str) -> str:
    tag = etag.strip()
    return tag if tag.startswith('"') or tag.startswith("W/") else f'"{tag}"'


def _evaluate(
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    etag: str,
    last_modified: float,
) -> tuple[bool, bool]:
    """(precondition failed, not modified) for the four conditions."""
    modified = int(last_modified)  # Last-Modified has second granularity
    failed = False
    if if_match is not None:
        failed = not etag_matches(if_match, etag)
    elif if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        failed = since is not None and modified > since
    not_modified = False
    if if_none_match is not None:
        not_modified = etag_matches(if_none_match, etag)
    elif if_modified_since is not None:
        since = parse_http_date(if_modified_since)
        not_modified = since is not None and modified <= since
    return failed, not_modified


def check_read_conditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """Evaluate the conditional headers of a GET or HEAD (lower-case ``headers``).

    Raises S3Error PreconditionFailed (412) or NotModified (304, carrying the ETag and
    Last-Modified headers); returns when the object is to be served. ``last_modified`` is in
    seconds since the epoch.
    """
    failed, not_modified = _evaluate(
        headers.get("if-match"),
        headers.get("if-none-match"),
        headers.get("if-modified-since"),
        headers.get("if-unmodified-since"),
        etag,
        last_modified,
    )
    if failed:
        raise S3Error("PreconditionFailed", Condition="If-Match")
    if not_modified:
        raise S3Error(
            "NotModified",
            status=304,
            headers={
                "ETag": _quoted(etag),
                "Last-Modified": email.utils.formatdate(int(last_modified), usegmt=True),
            },
        )


def check_copy_source_conditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """Evaluate ``x-amz-copy-source-if-*`` against the copy source; any failure is a 412.

    Same precedence as for GET: if-match true overrides if-unmodified-since false, and
    if-none-match false (the ETag matches) fails even when if-modified-since holds.
    """
    failed, not_modified = _evaluate(
        headers.get("x-amz-copy-source-if-match"),
        headers.get("x-amz-copy-source-if-none-match"),
        headers.get("x-amz-copy-source-if-modified-since"),
        headers.get("x-amz-copy-source-if-unmodified-since"),
        etag,
        last_modified,
    )
    if failed or not_modified:
        raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-Match")


def check_write_conditions(headers: Mapping[str, str], current_etag: str | None) -> None:
    """Evaluate the conditional-write headers of PutObject / CompleteMultipartUpload / CopyObject.

    ``current_etag`` is the ETag of the object now stored under the key, None when there is
    none. ``If-None-Match: *`` with an existing object -> 412 PreconditionFailed; ``If-Match``
    with no object -> 404 NoSuchKey, with a different ETag -> 412 PreconditionFailed.
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        if current_etag is None:
            raise S3Error("NoSuchKey")
        if not etag_matches(if_match, current_etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and current_etag is not None and etag_matches(if_none_match, current_etag):
        raise S3Error("PreconditionFailed", Condition="If-None-Match")
