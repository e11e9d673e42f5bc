"""The request bodies of versioning: PutBucketVersioning's ``<VersioningConfiguration>`` and the
version ids of a DeleteObjects ``<Delete>``."""

from __future__ import annotations

from typing import NamedTuple

from leofs.s3.errors import S3Error
from leofs.s3.xmlparse import MAX_DELETE_KEYS, _child, _children, _parse, _text


class VersioningConfiguration(NamedTuple):
    status: str | None  # Enabled | Suspended | None (not given: the state stays)
    mfa_delete: str | None  # Enabled | Disabled | None


def parse_versioning_configuration(body: bytes) -> VersioningConfiguration:
    """Parse a ``<VersioningConfiguration>``; any other Status or MfaDelete value is MalformedXML."""
    root = _parse(body, "VersioningConfiguration")
    status = _text(_child(root, "Status"))
    mfa = _text(_child(root, "MfaDelete"))
    if status is not None and status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML")
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise S3Error("MalformedXML")
    return VersioningConfiguration(status, mfa)


def parse_delete_versions(body: bytes) -> dict[int, str]:
    """The ``<VersionId>`` of each ``<Object>`` of a DeleteObjects body that has one, by position
    (the keys themselves come from :func:`~leofs.s3.xmlparse.parse_delete_objects`)."""
    root = _parse(body, "Delete")
    versions: dict[int, str] = {}
    for index, obj in enumerate(_children(root, "Object")):
        if index >= MAX_DELETE_KEYS:
            raise S3Error("MalformedXML")
        version = _text(_child(obj, "VersionId"))
        if version is not None:
            versions[index] = version
    return versions
