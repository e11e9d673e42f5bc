"""Fuzz the XML request-body parsers (CompleteMultipartUpload, DeleteObjects, ACL, CreateBucket):
each returns a well-typed result or raises its documented S3Error, for any bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from leofs.s3 import xmlparse
from leofs.s3.errors import S3Error
from tests.fuzz.profile import assert_client_error, fuzz

_NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
_XSI = ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'

#: parser -> the error code it documents
PARSERS: dict[str, tuple[Callable[[bytes], Any], str]] = {
    "CompleteMultipartUpload": (xmlparse.parse_complete_multipart, "MalformedXML"),
    "Delete": (xmlparse.parse_delete_objects, "MalformedXML"),
    "AccessControlPolicy": (xmlparse.parse_access_control_policy, "MalformedACLError"),
    "CreateBucketConfiguration": (xmlparse.parse_create_bucket, "MalformedXML"),
}

_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "-1", "--1", "+1", " 7 ", "0", "10000", "1e3", "１", "true", "false", "\"etag\"", ""]),
    st.integers(-(10**15), 10**15).map(str),
)
_NAMES = st.sampled_from([
    "Part", "PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256", "Object", "Key", "VersionId", "Quiet",
    "Owner", "ID", "DisplayName", "AccessControlList", "Grant", "Grantee", "Permission", "URI", "EmailAddress",
    "LocationConstraint", "x",
])


def _element(name: str, body: str, attrs: str = "") -> str:
    return f"<{name}{attrs}>{body}</{name}>"


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 3) -> str:
    """Elements with the names the parsers look for, nested at random, with random text."""
    name = draw(_NAMES)
    if depth == 0 or draw(st.booleans()):
        text = draw(_TEXT)
        escaped = text.replace("&", "&amp;").replace("<", "&lt;")
        return _element(name, escaped)
    children = draw(st.lists(xml_trees(depth - 1), max_size=4))
    attrs = draw(st.sampled_from(["", f'{_XSI} xsi:type="CanonicalUser"', f'{_XSI} xsi:type="Group"', ' type="x"']))
    return _element(name, "".join(children), attrs)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, bytes]:
    root = draw(st.sampled_from(sorted(PARSERS)))
    body = "".join(draw(st.lists(xml_trees(), max_size=5)))
    prolog = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?>\n',
                                   '<?xml version="1.0" encoding="latin-1"?>', '<?xml version="1.1"?>']))
    ns = draw(st.sampled_from(["", _NS]))
    doc = f"{prolog}<{root}{ns}>{body}</{root}>".encode()
    if draw(st.booleans()):  # damage it: cut, or flip a byte
        cut = draw(st.integers(0, len(doc)))
        doc = doc[:cut] if draw(st.booleans()) else doc[:cut] + bytes([draw(st.integers(0, 255))]) + doc[cut + 1 :]
    return root, doc


def check(root: str, body: bytes) -> None:
    parse, code = PARSERS[root]
    try:
        result = parse(body)
    except S3Error as err:
        assert_client_error(err, {code})
        return
    if root == "CompleteMultipartUpload":
        assert result and all(isinstance(p.part_number, int) and isinstance(p.etag, str) for p in result)
    elif root == "Delete":
        quiet, keys = result
        assert isinstance(quiet, bool) and 1 <= len(keys) <= xmlparse.MAX_DELETE_KEYS
    elif root == "AccessControlPolicy":
        assert result.owner_id
        assert all(g.permission in xmlparse.PERMISSIONS and g.grantee for g in result.grants)
    else:
        assert result is None or (isinstance(result, str) and result)


@fuzz()
@given(doc=documents())
@example(doc=("CompleteMultipartUpload",
              b"<CompleteMultipartUpload><Part><PartNumber>--1</PartNumber><ETag>x</ETag></Part>"
              b"</CompleteMultipartUpload>"))  # found by the fuzzer: int("--1") raised ValueError (a 500)
@example(doc=("CompleteMultipartUpload",
              b"<CompleteMultipartUpload><Part><PartNumber>-</PartNumber><ETag>x</ETag></Part>"
              b"</CompleteMultipartUpload>"))
@example(doc=("Delete", b'<!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>'))
@example(doc=("Delete", b'<?xml version="1.0" encoding="nope"?><Delete><Object><Key>k</Key></Object></Delete>'))
def test_structured_bodies(doc: tuple[str, bytes]) -> None:
    check(*doc)


@fuzz()
@given(root=st.sampled_from(sorted(PARSERS)), body=st.binary(max_size=400))
def test_arbitrary_bytes(root: str, body: bytes) -> None:
    check(root, body)


@fuzz(0.5)
@given(numbers=st.lists(st.integers(-(10**13), 10**13), min_size=1, max_size=5))
def test_complete_part_numbers_round_trip(numbers: list[int]) -> None:
    parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"e{i}\"</ETag></Part>" for i, n in enumerate(numbers))
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    try:
        result = xmlparse.parse_complete_multipart(body)
    except S3Error as err:  # only numbers longer than 12 characters are refused
        assert_client_error(err, {"MalformedXML"})
        assert any(len(str(n)) > 12 for n in numbers)
        return
    assert [p.part_number for p in result] == numbers
