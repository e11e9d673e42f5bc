"""Safe parsing of the XML request bodies S3 accepts, and escaping for XML responses.

The parser never resolves entities, never touches the network, keeps libxml2's size limits and
refuses any document with a DOCTYPE (so no entity-expansion bombs). Elements are matched by local
name, so bodies with or without the S3 namespace are both accepted, as S3 does. Every problem is
reported as an S3Error (MalformedXML, or MalformedACLError for ACLs).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
from lxml import etree

from leofs.s3.errors import ErrorCode, S3Error

_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    load_dtd=False,
    dtd_validation=False,
    remove_comments=True,
    remove_pis=True,
)
_DOCTYPE_RE: Final = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_XSI_TYPE: Final = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: a PartNumber: range checks are the caller's, but it must be an integer ("--1" is not)
_PART_NUMBER_RE: Final = re.compile(r"-?[0-9]+", re.ASCII)

#: the most keys one DeleteObjects request may name
MAX_DELETE_KEYS: Final = 1000
#: checksum elements of a CompleteMultipartUpload part -> algorithm
_PART_CHECKSUMS: Final = {
    "ChecksumCRC32": "CRC32",
    "ChecksumCRC32C": "CRC32C",
    "ChecksumCRC64NVME": "CRC64NVME",
    "ChecksumSHA1": "SHA1",
    "ChecksumSHA256": "SHA256",
}
PERMISSIONS: Final = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
GRANTEE_TYPES: Final = ("CanonicalUser", "Group", "AmazonCustomerByEmail")


class CompletedPart(msgspec.Struct, frozen=True):
    """One ``<Part>`` of a CompleteMultipartUpload body."""

    part_number: int
    etag: str
    checksums: dict[str, str] = msgspec.field(default_factory=dict)


class Grant(msgspec.Struct, frozen=True):
    """One ACL grant: ``grantee`` is the canonical id, group URI or e-mail address."""

    grantee_type: str
    grantee: str
    permission: str


class AccessControlPolicy(msgspec.Struct, frozen=True):
    """A parsed ``<AccessControlPolicy>``."""

    owner_id: str
    grants: list[Grant]


def _local(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _children(el: etree._Element, name: str | None = None) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and (name is None or _local(c) == name)]


def _child(el: etree._Element, name: str) -> etree._Element | None:
    for c in el:
        if isinstance(c.tag, str) and _local(c) == name:
            return c
    return None


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return "".join(t if isinstance(t, str) else t.decode() for t in el.itertext())


def _parse(body: bytes, root_name: str, code: ErrorCode = "MalformedXML") -> etree._Element:
    if _DOCTYPE_RE.search(body):
        raise S3Error(code)
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise S3Error(code) from None
    if root is None or _local(root) != root_name:
        raise S3Error(code)
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise S3Error(code)
    return root


class DeleteEntry(msgspec.Struct, frozen=True):
    """One ``<Object>`` of a DeleteObjects body: its key, and the ETag / VersionId it names."""

    key: str
    etag: str | None = None
    version_id: str | None = None


def parse_delete_objects(body: bytes) -> tuple[bool, list[str]]:
    """Parse a DeleteObjects ``<Delete>`` body into (quiet, keys) (see :func:`parse_delete_entries`)."""
    quiet, entries = parse_delete_entries(body)
    return quiet, [entry.key for entry in entries]


def parse_delete_entries(body: bytes) -> tuple[bool, list[DeleteEntry]]:
    """Parse a DeleteObjects ``<Delete>`` body into (quiet, entries).

    Keys keep their exact text (whitespace included). No objects, more than 1,000, or an
    ``<Object>`` without ``<Key>`` is MalformedXML.
    """
    root = _parse(body, "Delete")
    quiet_text = (_text(_child(root, "Quiet")) or "false").strip().lower()
    if quiet_text not in ("true", "false"):
        raise S3Error("MalformedXML")
    entries: list[DeleteEntry] = []
    for obj in _children(root, "Object"):
        key = _text(_child(obj, "Key"))
        if key is None:
            raise S3Error("MalformedXML")
        etag, version = _text(_child(obj, "ETag")), _text(_child(obj, "VersionId"))
        entries.append(DeleteEntry(key, etag.strip() if etag is not None else None,
                                   version.strip() if version is not None else None))
        if len(entries) > MAX_DELETE_KEYS:
            raise S3Error("MalformedXML")
    if not entries:
        raise S3Error("MalformedXML")
    return quiet_text == "true", entries


def parse_complete_multipart(body: bytes) -> list[CompletedPart]:
    """Parse a ``<CompleteMultipartUpload>`` body into its parts, in document order.

    Each part needs a PartNumber (an integer) and an ETag; per-part ``Checksum<ALG>`` elements
    land in ``checksums`` keyed by algorithm ("CRC32", ...). No parts is MalformedXML; ordering
    and existence are for the caller to check (InvalidPartOrder, InvalidPart).
    """
    root = _parse(body, "CompleteMultipartUpload")
    parts: list[CompletedPart] = []
    for part in _children(root, "Part"):
        number_text = _text(_child(part, "PartNumber"))
        etag = _text(_child(part, "ETag"))
        if number_text is None or etag is None:
            raise S3Error("MalformedXML")
        number_text = number_text.strip()
        if len(number_text) > 12 or not _PART_NUMBER_RE.fullmatch(number_text):
            raise S3Error("MalformedXML")
        checksums: dict[str, str] = {}
        for child in _children(part):
            alg = _PART_CHECKSUMS.get(_local(child))
            if alg is not None:
                checksums[alg] = (_text(child) or "").strip()
        parts.append(CompletedPart(int(number_text), etag.strip(), checksums))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


def parse_tagging(body: bytes) -> list[tuple[str, str]]:
    """Parse a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body into (key, value) pairs, in
    document order; limits are the caller's. No TagSet, or a Tag without Key or Value, is MalformedXML."""
    root = _parse(body, "Tagging")
    tag_set = _child(root, "TagSet")
    if tag_set is None:
        raise S3Error("MalformedXML")
    tags: list[tuple[str, str]] = []
    for tag in _children(tag_set, "Tag"):
        key, value = _text(_child(tag, "Key")), _text(_child(tag, "Value"))
        if key is None or value is None:
            raise S3Error("MalformedXML")
        tags.append((key, value))
    return tags


def parse_create_bucket(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucket body; None for an empty body or constraint."""
    if not body.strip():
        return None
    root = _parse(body, "CreateBucketConfiguration")
    text = _text(_child(root, "LocationConstraint"))
    if text is None or not text.strip():
        return None
    return text.strip()


def parse_access_control_policy(body: bytes) -> AccessControlPolicy:
    """Parse an ``<AccessControlPolicy>`` (PutBucketAcl / PutObjectAcl body).

    The grantee type comes from ``xsi:type``, or when absent from the child present (ID, URI,
    EmailAddress). Unknown permissions or grantee types, or a missing owner, are
    MalformedACLError.
    """
    code: ErrorCode = "MalformedACLError"
    root = _parse(body, "AccessControlPolicy", code)
    owner = _child(root, "Owner")
    owner_id = (_text(_child(owner, "ID")) if owner is not None else None) or ""
    if not owner_id.strip():
        raise S3Error(code)
    grants: list[Grant] = []
    acl = _child(root, "AccessControlList")
    for grant in _children(acl, "Grant") if acl is not None else []:
        grantee_el = _child(grant, "Grantee")
        permission = (_text(_child(grant, "Permission")) or "").strip()
        if grantee_el is None or permission not in PERMISSIONS:
            raise S3Error(code)
        xsi_type = grantee_el.get(_XSI_TYPE) or grantee_el.get("type")
        fields = {"CanonicalUser": "ID", "Group": "URI", "AmazonCustomerByEmail": "EmailAddress"}
        if xsi_type is None:
            for candidate, field in fields.items():
                if _child(grantee_el, field) is not None:
                    xsi_type = candidate
                    break
        if xsi_type not in fields:
            raise S3Error(code)
        value = (_text(_child(grantee_el, fields[xsi_type])) or "").strip()
        if not value:
            raise S3Error(code)
        grants.append(Grant(xsi_type, value, permission))
    return AccessControlPolicy(owner_id.strip(), grants)


_ESCAPES: Final = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&apos;",
    ord("\r"): "&#13;",
}
_ILLEGAL_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: any character xml_escape changes; most values (keys, ETags, sizes) have none and are returned as is
_SPECIAL_RE: Final = re.compile("[&<>\"'\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_escape(s: str) -> str:
    """Escape text for an XML 1.0 element or attribute value.

    ``& < > " '`` become entities and CR a character reference (so parsers do not fold it into
    LF); characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/FFFF)
    are dropped. Keys holding them can be listed exactly with ``encoding-type=url``.
    """
    if _SPECIAL_RE.search(s) is None:
        return s
    if _ILLEGAL_RE.search(s) is not None:
        s = _ILLEGAL_RE.sub("", s)
    return s.translate(_ESCAPES)
