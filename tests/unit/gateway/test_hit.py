"""What a plain GET of an http-mode cache hit is answered with (leofs.gateway.handlers.hit.derive):
the headers the normal path renders for that version, derived from an inline record only."""

from __future__ import annotations

from leofs.gateway.cache.store import MEM, Cached
from leofs.gateway.handlers.headers import stored_headers
from leofs.gateway.handlers.hit import derive
from leofs.gateway.objects import StoredObject
from leofs.gateway.records import ObjectMeta, meta_encoder
from leofs.storage.model import Entry


def record(meta: ObjectMeta, *, cnumber: int = 0, raw: bytes | None = None) -> Entry:
    return Entry(ns=0, key=b"b/k", clock=7, timestamp=1_700_000_000_000_000, tombstone=False, size=meta.size,
                 md5=b"\0" * 16, meta=meta_encoder.encode(meta) if raw is None else raw, cindex=0, cnumber=cnumber,
                 csize=0, container=0, generation=0, data_offset=0, crc=0)  # fmt: skip


def test_an_inline_record_gives_the_headers_of_the_normal_path() -> None:
    meta = ObjectMeta(5, "0" * 32, "owner", content_type="text/html", user_meta={"a": "1"}, acl="public-read",
                      tags=[("t", "v")], cache_control="no-transform")  # fmt: skip
    entry = record(meta)
    plain = derive(Cached(entry, b"hello", 0.0, MEM))
    assert plain is not None and plain.body == b"hello"
    assert dict(plain.headers) == stored_headers(StoredObject(entry, meta, None))
    assert plain.headers["x-amz-meta-a"] == "1" and plain.headers["x-amz-tagging-count"] == "1"
    assert [g.permission for g in plain.grants] == ["FULL_CONTROL", "READ"]


def test_only_a_whole_inline_record_is_derived() -> None:
    meta = ObjectMeta(5, "0" * 32, "owner")
    assert derive(Cached(record(meta, cnumber=2), b"manifest", 0.0, MEM)) is None  # a large object's manifest
    assert derive(Cached(record(meta), b"hell", 0.0, MEM)) is None  # not the size the record says
    assert derive(Cached(record(meta, raw=b"\xc1"), b"hello", 0.0, MEM)) is None  # undecodable metadata
