"""The request bodies of versioning: PutBucketVersioning's ``<VersioningConfiguration>`` and the
version ids of a DeleteObjects ``<Delete>``."""

from __future__ import annotations

from typing import NamedTuple

from leofs.s3.errors import S3Error
from leofs.s3.xmlparse import _child, _parse, _text


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
