"""Request XML parsing (namespaces optional, DOCTYPE and entity bombs refused) and escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.s3.errors import S3Error
from leofs.s3.xmlparse import (
    AccessControlPolicy,
    CompletedPart,
    Grant,
    parse_access_control_policy,
    parse_complete_multipart,
    parse_create_bucket,
    parse_delete_objects,
    xml_escape,
)

NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


@pytest.mark.parametrize("ns", ["", NS])
def test_delete_objects(ns: str) -> None:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Delete{ns}><Quiet>true</Quiet>'
        "<Object><Key> a &amp; b </Key></Object>"
        "<Object><Key>dir/é&lt;x&gt;</Key><VersionId>null</VersionId></Object>"
        "<Object><Key>cr&#13;lf</Key></Object></Delete>"
    ).encode()
    assert parse_delete_objects(body) == (True, [" a & b ", "dir/é<x>", "cr\rlf"])
    assert parse_delete_objects(b"<Delete><Object><Key>k</Key></Object></Delete>") == (False, ["k"])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
        b"<Other><Object><Key>k</Key></Object></Other>",
        b"<Delete><Object><Key>k</Key></Object>",
        ("<Delete>" + "<Object><Key>k</Key></Object>" * 1001 + "</Delete>").encode(),
    ],
)
def test_delete_objects_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        parse_delete_objects(body)
    assert exc.value.code == "MalformedXML"


def test_delete_objects_limit() -> None:
    body = ("<Delete>" + "<Object><Key>k</Key></Object>" * 1000 + "</Delete>").encode()
    assert len(parse_delete_objects(body)[1]) == 1000


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""

XXE = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""

PLAIN_DOCTYPE = b'<?xml version="1.0"?><!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>'
UTF16_DOCTYPE = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>'


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, PLAIN_DOCTYPE, UTF16_DOCTYPE.encode("utf-16")])
def test_doctype_rejected(body: bytes) -> None:
    for parse in (parse_delete_objects, parse_complete_multipart, parse_create_bucket):
        with pytest.raises(S3Error) as exc:
            parse(body)
        assert exc.value.code == "MalformedXML"
    with pytest.raises(S3Error) as exc:
        parse_access_control_policy(body)
    assert exc.value.code == "MalformedACLError"


@pytest.mark.parametrize("ns", ["", NS])
def test_complete_multipart(ns: str) -> None:
    body = (
        f"<CompleteMultipartUpload{ns}>"
        '<Part><PartNumber>1</PartNumber><ETag>"aaa"</ETag><ChecksumCRC32>NhCmhg==</ChecksumCRC32></Part>'
        "<Part><ETag> &quot;bbb&quot; </ETag><PartNumber> 2 </PartNumber>"
        "<ChecksumSHA256>x</ChecksumSHA256><ChecksumCRC64NVME>y</ChecksumCRC64NVME></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    assert parse_complete_multipart(body) == [
        CompletedPart(1, '"aaa"', {"CRC32": "NhCmhg=="}),
        CompletedPart(2, '"bbb"', {"SHA256": "x", "CRC64NVME": "y"}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload/>",
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1.5</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<Complete><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Complete>",
    ],
)
def test_complete_multipart_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        parse_complete_multipart(body)
    assert exc.value.code == "MalformedXML"


def test_create_bucket() -> None:
    assert parse_create_bucket(b"") is None
    assert parse_create_bucket(b"  \n") is None
    assert parse_create_bucket(f"<CreateBucketConfiguration{NS}/>".encode()) is None
    body = (
        f"<CreateBucketConfiguration{NS}><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"
    )
    assert parse_create_bucket(body.encode()) == "eu-west-1"
    with pytest.raises(S3Error) as exc:
        parse_create_bucket(b"<CreateBucketConfiguration><LocationConstraint>x")
    assert exc.value.code == "MalformedXML"


ACL = b"""<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Owner><ID>owner-id</ID><DisplayName>me</DisplayName></Owner>
  <AccessControlList>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">
        <ID>owner-id</ID><DisplayName>me</DisplayName></Grantee>
      <Permission>FULL_CONTROL</Permission>
    </Grant>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">
        <URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>
      <Permission>READ</Permission>
    </Grant>
    <Grant>
      <Grantee><EmailAddress>a@example.com</EmailAddress></Grantee>
      <Permission>WRITE_ACP</Permission>
    </Grant>
  </AccessControlList>
</AccessControlPolicy>"""


def test_access_control_policy() -> None:
    assert parse_access_control_policy(ACL) == AccessControlPolicy(
        "owner-id",
        [
            Grant("CanonicalUser", "owner-id", "FULL_CONTROL"),
            Grant("Group", "http://acs.amazonaws.com/groups/global/AllUsers", "READ"),
            Grant("AmazonCustomerByEmail", "a@example.com", "WRITE_ACP"),
        ],
    )
    no_grants = b"<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList/></AccessControlPolicy>"
    assert parse_access_control_policy(no_grants) == AccessControlPolicy("o", [])


@pytest.mark.parametrize(
    "body",
    [
        ACL.replace(b"FULL_CONTROL", b"EVERYTHING"),
        ACL.replace(b'xsi:type="Group"', b'xsi:type="Robot"'),
        ACL.replace(b"<ID>owner-id</ID><DisplayName>me</DisplayName></Owner>", b"</Owner>"),
        ACL.replace(b"<EmailAddress>a@example.com</EmailAddress>", b""),
        b"<AccessControlPolicy>",
    ],
)
def test_access_control_policy_malformed(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        parse_access_control_policy(body)
    assert exc.value.code == "MalformedACLError"


def test_xml_escape_table() -> None:
    assert xml_escape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&apos;f"
    assert xml_escape("x\ry\nz\t") == "x&#13;y\nz\t"
    assert xml_escape("bad\x00\x01\x1f\ufffe\ud800end") == "badend"
    assert xml_escape("日本語 🎉") == "日本語 🎉"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_xml_escape_roundtrips_through_a_parser(text: str) -> None:
    doc = f"<K a='{xml_escape(text)}'>{xml_escape(text)}</K>"
    el = ET.fromstring(doc)
    legal = "".join(
        c
        for c in text
        if c in "\t\n\r" or ("\x20" <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c >= "\U00010000"
    )
    assert (el.text or "") == legal
