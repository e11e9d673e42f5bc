"""Object metadata <-> HTTP headers: what PUT stores and what GET/HEAD return."""

from __future__ import annotations

from collections.abc import Mapping

from leofs.accounts import CANNED_ACLS
from leofs.gateway.context import S3Request
from leofs.gateway.objects import StoredObject
from leofs.gateway.records import ObjectMeta
from leofs.s3.checksums import header_name
from leofs.s3.errors import S3Error
from leofs.s3.responses import http_date
from leofs.s3.tagging import tags_from_header

MAX_USER_METADATA = 2048
_STORED_HEADERS = (
    ("Content-Type", "content_type"),
    ("Content-Encoding", "content_encoding"),
    ("Content-Disposition", "content_disposition"),
    ("Content-Language", "content_language"),
    ("Cache-Control", "cache_control"),
    ("Expires", "expires"),
)
_OVERRIDES = (
    ("response-content-type", "Content-Type"),
    ("response-content-language", "Content-Language"),
    ("response-expires", "Expires"),
    ("response-cache-control", "Cache-Control"),
    ("response-content-disposition", "Content-Disposition"),
    ("response-content-encoding", "Content-Encoding"),
)


def canned_acl(headers: Mapping[str, str]) -> str:
    """The x-amz-acl of a request (default private); InvalidArgument for unknown values."""
    acl = headers.get("x-amz-acl", "private").strip()
    if acl not in CANNED_ACLS:
        if acl in ("bucket-owner-read", "bucket-owner-full-control", "aws-exec-read", "log-delivery-write"):
            return "private"  # single-owner buckets: these collapse to private
        raise S3Error("InvalidArgument", f"Invalid canned ACL: {acl}", ArgumentName="x-amz-acl", ArgumentValue=acl)
    return acl


def meta_from_headers(req: S3Request, *, size: int = 0, etag: str = "") -> ObjectMeta:
    """The metadata a PUT (or a REPLACE copy, or CreateMultipartUpload) asks to store."""
    headers = req.headers
    values: dict[str, str | None] = {}
    for header, field in _STORED_HEADERS:
        values[field] = headers.get(header)
    encoding = values["content_encoding"]
    if encoding is not None:  # aws-chunked is transport framing, not the object's encoding
        kept = [e.strip() for e in encoding.split(",") if e.strip() and e.strip().lower() != "aws-chunked"]
        values["content_encoding"] = ", ".join(kept) or None
    if values["content_type"] is None:
        values["content_type"] = "binary/octet-stream"
    user_meta: dict[str, str] = {}
    total = 0
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-meta-"):
            mname = lname[len("x-amz-meta-"):]
            user_meta[mname] = f"{user_meta[mname]},{value}" if mname in user_meta else value
    for header, field in _STORED_HEADERS:
        _require_utf8(header, values[field])
    for mname, value in user_meta.items():
        _require_utf8(f"x-amz-meta-{mname}", value)
        total += len(mname.encode()) + len(value.encode())
    if total > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge", Size=str(total), MaxSizeAllowed=str(MAX_USER_METADATA))
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class not in ("STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                             "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "EXPRESS_ONEZONE"):
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage_class)
    return ObjectMeta(
        size=size,
        etag=etag,
        owner=req.access_key or "",
        content_type=values["content_type"],
        content_encoding=values["content_encoding"],
        content_disposition=values["content_disposition"],
        content_language=values["content_language"],
        cache_control=values["cache_control"],
        expires=values["expires"],
        user_meta=user_meta,
        acl=canned_acl(headers),
        storage_class="STANDARD" if storage_class == "STANDARD" else storage_class,
        tags=header_tags(headers),
    )


def header_tags(headers: Mapping[str, str]) -> list[tuple[str, str]] | None:
    """The tag set an ``x-amz-tagging`` header asks for (None: no header, or no tags)."""
    value = headers.get("x-amz-tagging")
    return (tags_from_header(value) or None) if value is not None else None


def _require_utf8(header: str, value: str | None) -> None:
    """Stored headers must be text: raw bytes that are not UTF-8 arrive as surrogate escapes."""
    for text in (header, value or ""):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                name = header.encode("utf-8", "replace").decode()
                raise S3Error("InvalidArgument", "Header names and values must be valid UTF-8.",
                              ArgumentName=name) from None


def object_headers(req: S3Request, obj: StoredObject) -> dict[str, str]:
    """Headers of a GET or HEAD response for ``obj`` (before Range and checksum handling)."""
    out = stored_headers(obj)
    out.update(response_overrides(req))
    return out


def stored_headers(obj: StoredObject) -> dict[str, str]:
    """The headers of a GET or HEAD of ``obj`` that only its version decides (no request overrides)."""
    meta = obj.meta
    out: dict[str, str] = {
        "ETag": obj.quoted_etag,
        "Last-Modified": http_date(obj.last_modified),
        "Accept-Ranges": "bytes",
    }
    for header, field in _STORED_HEADERS:
        value = getattr(meta, field)
        if value is not None:
            out[header] = value
    for name, value in meta.user_meta.items():
        out[f"x-amz-meta-{name}"] = value
    if meta.storage_class != "STANDARD":
        out["x-amz-storage-class"] = meta.storage_class
    if meta.tags:
        out["x-amz-tagging-count"] = str(len(meta.tags))
    return out


def response_overrides(req: S3Request) -> dict[str, str]:
    """The headers a GET or HEAD asks to override (``response-content-type=...``), validated.

    As in S3: only signed requests may override (InvalidRequest otherwise: an anonymous link must
    not turn a public image into HTML), and a value must be a valid header value (InvalidArgument).
    """
    out: dict[str, str] = {}
    for param, header in _OVERRIDES:
        value = req.query.get(param)
        if value is None:
            continue
        if req.access_key is None:
            raise S3Error("InvalidRequest", "Request specific response headers cannot be used for anonymous GET "
                          "requests.")
        if not _valid_header_value(value):
            raise S3Error("InvalidArgument", "Header value cannot be represented using ISO-8859-1 or contains "
                          "control characters.", ArgumentName=param, ArgumentValue=value[:256])
        out[header] = value
    return out


def _valid_header_value(value: str) -> bool:
    # ISO-8859-1 without control characters (tab aside): CR/LF would split the response
    return all(c == "\t" or " " <= c <= "~" or "\xa0" <= c <= "\xff" for c in value)


def checksum_headers(meta: ObjectMeta) -> dict[str, str]:
    """The stored flexible checksum, for responses that return it."""
    if meta.checksum_algorithm is None or meta.checksum_value is None:
        return {}
    headers = {header_name(meta.checksum_algorithm): meta.checksum_value}
    if meta.checksum_type:
        headers["x-amz-checksum-type"] = meta.checksum_type
    return headers
