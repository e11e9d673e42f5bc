"""Listing XML: the one-f-string-per-key rendering against the element-by-element reference it replaced."""

from __future__ import annotations

import types
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.gateway.handlers import listing
from leofs.gateway.handlers.buckets import canonical_id
from leofs.gateway.handlers.listing import Page
from leofs.gateway.records import ObjectMeta
from leofs.s3.responses import elem, iso8601, owner_xml
from leofs.storage.model import Entry

ALICE_ID = "a1" * 32


class _User:
    def __init__(self, user_id: str, canonical_id: str) -> None:
        self.user_id = user_id
        self.canonical_id = canonical_id


def _gw() -> Any:
    users = {"AKIA1": _User("alice & co", ALICE_ID), "AKIA2": _User("bob", "b2" * 32)}
    return types.SimpleNamespace(control=types.SimpleNamespace(user=users.get))


def _reference_contents(gw: Any, page: Page, url: bool, owner: bool, tag: str = "Contents",
                        version: bool = False) -> str:
    """The rendering before one f-string per key (elem() for every value)."""

    def enc(value: str) -> str:
        return quote(value, safe="/") if url else value

    out = []
    for key, entry, meta in page.contents:
        parts = [elem("Key", enc(key))]
        if version:
            parts += [elem("VersionId", "null"), elem("IsLatest", "true")]
        parts += [elem("LastModified", iso8601(entry.timestamp)), elem("ETag", f'"{meta.etag}"'),
                  elem("Size", meta.size)]
        if not version:
            parts.append(elem("StorageClass", meta.storage_class))
        if meta.checksum_algorithm and not version:
            parts.append(elem("ChecksumAlgorithm", meta.checksum_algorithm))
        if owner:
            user = gw.control.user(meta.owner)
            parts.append(owner_xml(canonical_id(gw, meta.owner), user.user_id if user else ""))
        if version:
            parts.append(elem("StorageClass", meta.storage_class))
        out.append(f"<{tag}>{''.join(parts)}</{tag}>")
    return "".join(out)


def _reference_prefixes(page: Page, url: bool) -> str:
    return "".join(f"<CommonPrefixes>{elem('Prefix', quote(p, safe='/') if url else p)}</CommonPrefixes>"
                   for p in page.prefixes)


def _entry(timestamp: int) -> Entry:
    return Entry(0, b"b/k", 1, timestamp, False, 1, b"", b"", 0, 0, 0, 0, 0, 0, 0)


_plain_text = st.text(alphabet="abcXYZ019-_./ ", max_size=12)
_any_text = st.text(max_size=12)  # & < > " ' CR, C0 controls, lone surrogates, U+FFFE ...
_items = st.lists(
    st.tuples(
        st.one_of(_plain_text, _any_text),  # key
        st.integers(0, 2**62),  # timestamp (microseconds)
        st.integers(0, 2**40),  # size
        st.one_of(st.just("9dd4e461268c8034f5c8564e155c67a6"), st.just("9dd4e461268c8034f5c8564e155c67a6-3"),
                  _any_text),  # etag
        st.sampled_from(["AKIA1", "AKIA2", "AKIA<unknown>"]),  # owner
        st.one_of(st.none(), st.just(""), st.sampled_from(["CRC32", "SHA256"]), _any_text),  # checksum algorithm
        st.one_of(st.sampled_from(["STANDARD", "GLACIER"]), _any_text),  # storage class
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(items=_items, prefixes=st.lists(st.one_of(_plain_text, _any_text), max_size=3), url=st.booleans(),
       owner=st.booleans())
def test_contents_and_prefixes_render_as_the_reference(
    items: list[tuple[str, int, int, str, str, str | None, str]], prefixes: list[str], url: bool, owner: bool
) -> None:
    gw = _gw()
    page = Page([], prefixes, False, b"")
    for key, ts, size, etag, own, algorithm, storage_class in items:
        meta = ObjectMeta(size=size, etag=etag, owner=own, checksum_algorithm=algorithm, storage_class=storage_class)
        page.contents.append((key, _entry(ts), meta))
    assert listing._contents(gw, page, url, owner) == _reference_contents(gw, page, url, owner)
    assert (listing._contents(gw, page, url, True, "Version", True)
            == _reference_contents(gw, page, url, True, "Version", True))
    assert listing._prefixes(page, url) == _reference_prefixes(page, url)


def test_contents_of_a_typical_page() -> None:
    gw = _gw()
    etag = "9dd4e461268c8034f5c8564e155c67a6"
    page = Page([], [], False, b"")
    for i, key in enumerate(["a", "a&b", "dir/x y", "q\"'<>", "\r\x01"]):
        meta = ObjectMeta(size=i, etag=etag, owner="AKIA1", checksum_algorithm="CRC32" if i == 2 else None)
        page.contents.append((key, _entry(1_700_000_000_123_456 + i), meta))
    got = listing._contents(gw, page, False, True)
    assert got == _reference_contents(gw, page, False, True)
    assert got.startswith(
        "<Contents><Key>a</Key><LastModified>2023-11-14T22:13:20.123Z</LastModified>"
        f"<ETag>&quot;{etag}&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass>"
        f"<Owner><ID>{ALICE_ID}</ID><DisplayName>alice &amp; co</DisplayName></Owner></Contents>"
        "<Contents><Key>a&amp;b</Key>"
    )
    assert "<Key>q&quot;&apos;&lt;&gt;</Key>" in got and "<Key>&#13;</Key>" in got
    assert "<StorageClass>STANDARD</StorageClass><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Owner>" in got
