"""Listing XML against fixed documents written from the S3 API reference's examples (ListObjectsV2,
ListObjects with owners, encoding-type=url, ListObjectVersions), and, for arbitrary pages, every
value parsed back with an XML parser and checked against its own definition (no code shared with
the renderer)."""

from __future__ import annotations

import datetime as dt
import re
import types
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.gateway.handlers import listing
from leofs.gateway.handlers.listing import Page
from leofs.gateway.records import ObjectMeta
from leofs.storage.model import Entry

ETAG = "9dd4e461268c8034f5c8564e155c67a6"
ALICE_ID = "a1" * 32  # canonical ids: 64 hex characters, never the access key
BOB_ID = "b2" * 32
#: a user deleted since shows an opaque id derived from its key (sha256 of "leofs-unknown-user\0AKIA9")
UNKNOWN_ID = "960dd7ca9bb75f84939fb56523592f343a6270dd4b3d662dd50204b37da5f892"


class _User:
    def __init__(self, user_id: str, canonical_id: str) -> None:
        self.user_id = user_id
        self.canonical_id = canonical_id


def _gw() -> Any:
    users = {"AKIA1": _User("alice & co", ALICE_ID), "AKIA2": _User("bob", BOB_ID)}
    return types.SimpleNamespace(control=types.SimpleNamespace(user=users.get))


def _entry(timestamp: int) -> Entry:
    return Entry(0, b"b/k", 1, timestamp, False, 1, b"", b"", 0, 0, 0, 0, 0, 0, 0)


def _typical_page() -> Page:
    page = Page([], ["dir/", "q&a/"], False, b"")
    for i, key in enumerate(["a", "a&b", "dir x/y+z", "q\"'<>", "\r\x01é"]):
        meta = ObjectMeta(size=i, etag=ETAG, owner="AKIA1" if i != 4 else "AKIA9",
                          checksum_algorithm="CRC32" if i == 2 else None,
                          storage_class="GLACIER" if i == 3 else "STANDARD")  # fmt: skip
        page.contents.append((key, _entry(1_700_000_000_123_456 + i * 1_000_000), meta))
    return page


# Written by hand after the reference's examples: ETag quotes as &quot;, times with milliseconds and Z,
# Owner = ID and DisplayName, CR as a character reference, characters XML cannot carry left out.
_V2 = (
    '<Contents><Key>a</Key><LastModified>2023-11-14T22:13:20.123Z</LastModified>'
    '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass>'
    '</Contents>'
    '<Contents><Key>a&amp;b</Key><LastModified>2023-11-14T22:13:21.123Z</LastModified>'
    '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>'
    '</Contents>'
    '<Contents><Key>dir x/y+z</Key><LastModified>2023-11-14T22:13:22.123Z</LastModified>'
    '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>2</Size><StorageClass>STANDARD</StorageClass>'
    '<ChecksumAlgorithm>CRC32</ChecksumAlgorithm></Contents>'
    '<Contents><Key>q&quot;&apos;&lt;&gt;</Key><LastModified>2023-11-14T22:13:23.123Z</LastModified>'
    '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>3</Size><StorageClass>GLACIER</StorageClass>'
    '</Contents>'
    '<Contents><Key>&#13;é</Key><LastModified>2023-11-14T22:13:24.123Z</LastModified>'
    '<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>4</Size><StorageClass>STANDARD</StorageClass>'
    '</Contents>'
)
_OWNER = f"<Owner><ID>{ALICE_ID}</ID><DisplayName>alice &amp; co</DisplayName></Owner>"
_UNKNOWN_OWNER = f"<Owner><ID>{UNKNOWN_ID}</ID><DisplayName></DisplayName></Owner>"


def test_contents_as_the_reference_documents() -> None:
    gw, page = _gw(), _typical_page()
    assert listing._contents(gw, page, False, False) == _V2
    with_owner = _V2.replace("</StorageClass></Contents>", f"</StorageClass>{_OWNER}</Contents>").replace(
        "</ChecksumAlgorithm></Contents>", f"</ChecksumAlgorithm>{_OWNER}</Contents>")
    with_owner = with_owner.replace(f"<Size>4</Size><StorageClass>STANDARD</StorageClass>{_OWNER}",
                                    f"<Size>4</Size><StorageClass>STANDARD</StorageClass>{_UNKNOWN_OWNER}")
    assert listing._contents(gw, page, False, True) == with_owner
    assert listing._prefixes(page, False) == (
        "<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>"
        "<CommonPrefixes><Prefix>q&amp;a/</Prefix></CommonPrefixes>")


def test_url_encoded_keys_as_the_reference_documents() -> None:
    gw, page = _gw(), _typical_page()
    got = listing._contents(gw, page, True, False)
    keys = re.findall(r"<Key>(.*?)</Key>", got)
    # encoding-type=url: every byte outside unreserved characters and "/" percent-encoded, UTF-8 first
    assert keys == ["a", "a%26b", "dir%20x/y%2Bz", "q%22%27%3C%3E", "%0D%01%C3%A9"]
    assert listing._prefixes(page, True) == (
        "<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>"
        "<CommonPrefixes><Prefix>q%26a/</Prefix></CommonPrefixes>")


def test_versions_as_the_reference_documents() -> None:
    gw = _gw()
    page = Page([], [], False, b"")
    page.contents.append(("a&b", _entry(1_700_000_000_123_456), ObjectMeta(size=7, etag=ETAG, owner="AKIA2",
                                                                             checksum_algorithm="CRC32")))
    assert listing._contents(gw, page, False, True, "Version", True) == (
        "<Version><Key>a&amp;b</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        "<LastModified>2023-11-14T22:13:20.123Z</LastModified>"
        "<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>7</Size>"
        f"<Owner><ID>{BOB_ID}</ID><DisplayName>bob</DisplayName></Owner>"
        "<StorageClass>STANDARD</StorageClass></Version>")


# -- arbitrary pages: parse the XML back and check each value ---------------------------------------
_XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    """What an XML 1.0 document can carry of ``value``: characters it cannot are left out."""
    return "".join(c for c in value if _XML_CHAR.fullmatch(c))


def _time(micros: int) -> str:
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


_plain_text = st.text(alphabet="abcXYZ019-_./ ", max_size=12)
_any_text = st.text(max_size=12)  # & < > " ' CR, C0 controls, U+FFFE ...
_items = st.lists(
    st.tuples(
        st.one_of(_plain_text, _any_text),  # key
        st.integers(0, 2**55),  # timestamp (microseconds)
        st.integers(0, 2**40),  # size
        st.one_of(st.just(ETAG), st.just(ETAG + "-3"), _any_text),  # etag
        st.sampled_from(["AKIA1", "AKIA2", "AKIA<unknown>"]),  # owner
        st.one_of(st.none(), st.just(""), st.sampled_from(["CRC32", "SHA256"]), _any_text),  # checksum algorithm
        st.one_of(st.sampled_from(["STANDARD", "GLACIER"]), _any_text),  # storage class
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(items=_items, prefixes=st.lists(st.one_of(_plain_text, _any_text), max_size=3), url=st.booleans(),
       owner=st.booleans(), version=st.booleans())
def test_every_value_parses_back(
    items: list[tuple[str, int, int, str, str, str | None, str]], prefixes: list[str], url: bool, owner: bool,
    version: bool,
) -> None:
    gw = _gw()
    page = Page([], prefixes, False, b"")
    for key, ts, size, etag, own, algorithm, storage_class in items:
        meta = ObjectMeta(size=size, etag=etag, owner=own, checksum_algorithm=algorithm, storage_class=storage_class)
        page.contents.append((key, _entry(ts), meta))
    tag = "Version" if version else "Contents"
    doc = ET.fromstring("<r>" + listing._contents(gw, page, url, owner, tag, version) + listing._prefixes(page, url)
                        + "</r>")  # fmt: skip
    elements = doc.findall(tag)
    assert len(elements) == len(items)
    for el, (key, ts, size, etag, own, algorithm, storage_class) in zip(elements, items, strict=True):
        names = [child.tag for child in el]
        text = {child.tag: child.text or "" for child in el}
        assert (unquote(text["Key"]) == key) if url else (text["Key"] == _xml_text(key))
        assert text["LastModified"] == _time(ts)
        assert text["ETag"] == '"' + _xml_text(etag) + '"'
        assert text["Size"] == str(size)
        assert text["StorageClass"] == _xml_text(storage_class)
        if version:
            assert names[:3] == ["Key", "VersionId", "IsLatest"] and text["VersionId"] == "null"
            assert "ChecksumAlgorithm" not in names
        else:
            assert names[:4] == ["Key", "LastModified", "ETag", "Size"]
            assert text.get("ChecksumAlgorithm") == (_xml_text(algorithm) if algorithm else None)
        if owner:
            user = gw.control.user(own)
            owner_el = el.find("Owner")
            assert owner_el is not None
            if user:
                assert owner_el.findtext("ID") == user.canonical_id
            else:  # an opaque id, never the access key
                assert re.fullmatch("[0-9a-f]{64}", owner_el.findtext("ID") or "")
            assert owner_el.findtext("DisplayName") == (user.user_id if user else "")
        else:
            assert "Owner" not in names
    got_prefixes = [p.findtext("Prefix") or "" for p in doc.findall("CommonPrefixes")]
    if url:
        assert [unquote(p) for p in got_prefixes] == prefixes
    else:
        assert got_prefixes == [_xml_text(p) for p in prefixes]
