"""GetObject answered from an http-mode cache hit: the plain 200 answer, derived once per version.

A plain GET (no Range, partNumber, versionId, conditional headers or response-* overrides) of an
object that the http-mode cache served (``CacheNote.hit``) is answered with what was derived from
that cached version the first time it was served: its decoded record, its ACL's grants, its
response headers and its body, sent in one write. They are kept with the cache entry
(``Cached.derived``), which a write or delete through this gateway, purge-cache and TTL expiry
replace, so they never outlive the version they describe.

What depends on the request or on the moment is still judged on every request, as on the normal
path: authentication and the bucket's ACL (before the handler), the object's ACL, the bucket
generation, the version headers (the bucket's versioning state may change), the checksum that
``x-amz-checksum-mode`` asks for and, in the app's ``response_prepare`` hooks, the request id,
Cache-Control and Age, and the custom headers of the path (reloadable). Any other GET takes the
normal path, which answers the same version the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from leofs.accounts import Grant
from leofs.gateway.cache.note import current_note
from leofs.gateway.cache.store import Cached
from leofs.gateway.context import S3Request
from leofs.gateway.fence import in_generation
from leofs.gateway.handlers.headers import checksum_headers, stored_headers
from leofs.gateway.object_acl import check_object_acl, object_grants
from leofs.gateway.objects import StoredObject
from leofs.gateway.records import object_meta_decoder
from leofs.gateway.versions import version_headers
from leofs.storage.model import Entry

#: request headers that make a GET more than a plain read of the whole current version
_SHAPING_HEADERS = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")


@dataclass(slots=True, frozen=True)
class PlainGet:
    """The request-independent part of a plain 200 GET of one cached version."""

    obj: StoredObject
    grants: list[Grant]
    headers: CIMultiDict[str]
    body: bytes


def is_plain(req: S3Request) -> bool:
    """Whether ``req`` (a GetObject) asks for the whole current version with no request-specific shaping."""
    query = req.query
    if query and ("versionId" in query or "partNumber" in query or any(p.startswith("response-") for p in query)):
        return False
    headers = req.headers
    return not any(name in headers for name in _SHAPING_HEADERS)


def derive(cached: Cached) -> PlainGet | None:
    """What a plain GET of ``cached`` answers whatever the request (None: not an inline object)."""
    entry = cached.entry
    if entry.tombstone or entry.cnumber > 0:
        return None
    try:
        meta = object_meta_decoder.decode(entry.meta)
    except msgspec.DecodeError:
        return None
    if meta.size != len(cached.data):
        return None
    obj = StoredObject(entry, meta, None)
    return PlainGet(obj, object_grants(obj), CIMultiDict(stored_headers(obj)), cached.data)


def hit_response(req: S3Request, got: tuple[Entry, bytes] | None, generation: float) -> web.Response | None:
    """The answer to a plain GET whose fetch ``got`` was an http-mode cache hit, or None: the
    normal path answers (not a hit, not plain, or a record of another bucket generation).
    Raises AccessDenied as the normal path does when the object's ACL refuses the caller."""
    hit = current_note().hit
    if hit is None or got is None or hit.entry is not got[0] or not is_plain(req):
        return None
    plain = _remembered(hit)
    if plain is None:
        return None
    meta = plain.obj.meta
    if not in_generation(meta, generation):
        return None
    check_object_acl(req, plain.obj, plain.grants)
    response = web.Response(body=plain.body, headers=plain.headers)
    versions = version_headers(req.bucket_record, meta)
    if versions:
        response.headers.update(versions)
    if "x-amz-checksum-mode" in req.headers and req.headers["x-amz-checksum-mode"].upper() == "ENABLED":
        response.headers.update(checksum_headers(meta))
    return response


def _remembered(hit: Cached) -> PlainGet | None:
    """:func:`derive` of ``hit``, once: kept with the cache entry."""
    if isinstance(hit.derived, PlainGet):
        return hit.derived
    plain = derive(hit)
    hit.derived = plain
    return plain
