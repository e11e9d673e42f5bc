"""How S3 answers name users: canonical ids and ``<Owner>`` elements (never an access key)."""

from __future__ import annotations

import hashlib

from leofs.gateway.context import Services
from leofs.s3.responses import owner_xml


def canonical_id(gw: Services, access_key: str) -> str:
    """The ID S3 answers show for the user with ``access_key``: its canonical id, never the key.

    A user deleted since (or an anonymous writer, "") shows as an opaque id derived from the key.
    """
    user = gw.control.user(access_key) if access_key else None
    if user is not None and user.canonical_id:
        return user.canonical_id
    return hashlib.sha256(b"leofs-unknown-user\0" + access_key.encode()).hexdigest() if access_key else ""


def owner_of(gw: Services, access_key: str) -> str:
    """``<Owner>`` of a user: ID = canonical id, DisplayName = user id."""
    user = gw.control.user(access_key) if access_key else None
    return owner_xml(canonical_id(gw, access_key), user.user_id if user else "")
