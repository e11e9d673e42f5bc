"""Tag sets: the Tagging document and the x-amz-tagging header, and AWS's limits (InvalidTag)."""

from __future__ import annotations

import pytest

from leofs.s3.errors import S3Error
from leofs.s3.tagging import checked, tagging_document, tags_from_header, tags_from_xml
from leofs.s3.xmlparse import parse_tagging


def _doc(*tags: tuple[str, str]) -> bytes:
    items = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{items}</TagSet></Tagging>'.encode()


def test_document_round_trip() -> None:
    tags = [("b", "2"), ("a", "1 + x"), ("e", "")]
    assert tags_from_xml(_doc(*tags)) == tags
    assert tags_from_xml(tagging_document(tags)) == tags
    assert parse_tagging(_doc(("a", "1 &amp; &lt;x&gt;"))) == [("a", "1 & <x>")]  # escaped, then refused
    with pytest.raises(S3Error):
        tags_from_xml(_doc(("a", "1 &amp; &lt;x&gt;")))
    assert tags_from_xml(_doc()) == []


@pytest.mark.parametrize("body", [b"<Tagging/>", b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
                                  b"<Other/>", b"junk"])
def test_malformed_documents(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        tags_from_xml(body)
    assert exc.value.code == "MalformedXML"


def test_header_form() -> None:
    assert tags_from_header("a=1&b=x%20y&c=&d") == [("a", "1"), ("b", "x y"), ("c", ""), ("d", "")]
    assert tags_from_header("k=a%2Fb%3Dc%2Bd") == [("k", "a/b=c+d")]
    assert tags_from_header("") == []
    with pytest.raises(S3Error) as exc:
        tags_from_header("a=%FF")
    assert exc.value.code == "InvalidArgument"


@pytest.mark.parametrize(("tags", "limit"), [
    ([(f"k{i}", "v") for i in range(11)], 10),
    ([(f"k{i}", "v") for i in range(51)], 50),
    ([("a", "1"), ("a", "2")], 10),
    ([("k" * 129, "v")], 10),
    ([("", "v")], 10),
    ([("k", "v" * 257)], 10),
    ([("AWS:x", "v")], 10),
    ([("k", "v\n")], 10),
    ([("k", "\u20ac")], 10),
])
def test_limits(tags: list[tuple[str, str]], limit: int) -> None:
    with pytest.raises(S3Error) as exc:
        checked(tags, limit=limit)
    assert (exc.value.code, exc.value.status) == ("InvalidTag", 400)


def test_at_the_limits() -> None:
    tags = [(f"k{i}", "v") for i in range(9)] + [("k" * 128, "\u00e9" * 256)]
    assert checked(tags, limit=10) == tags
    assert checked([("a b_.:/=+-@9", "Z z")], limit=10) == [("a b_.:/=+-@9", "Z z")]
