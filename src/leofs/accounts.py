"""Accounts and access: users, buckets, grants, canned ACLs, and the control plane's errors.

Plain data shared by the manager (which stores them), the gateways (which enforce them) and the
admin tools; no project imports, so any role can use them without loading another role's code.
"""

from __future__ import annotations

import msgspec

ROLE_GENERAL = 1
ROLE_ADMIN = 9

CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read")


class User(msgspec.Struct, frozen=True):
    """A user. ``canonical_id`` (64 hex, random) is what S3 answers show as Owner/Grantee ID:
    the access key never leaves the server in an S3 answer."""

    user_id: str
    access_key: str
    secret_key: str
    role: int
    created: float
    canonical_id: str = ""
    email: str = ""  # lower case; ACL grants by e-mail address (AmazonCustomerByEmail) name the user by it


class Grant(msgspec.Struct, frozen=True):
    """One ACL grant: grantee_type CanonicalUser (grantee = access key, shown to S3 clients as the
    user's canonical id) or Group (grantee = URI)."""

    grantee_type: str
    grantee: str
    permission: str  # FULL_CONTROL | READ | WRITE | READ_ACP | WRITE_ACP


class Bucket(msgspec.Struct, frozen=True):
    name: str
    owner: str  # access key of the owner
    acl: str  # canned ACL name, or "custom" when grants were set explicitly
    grants: list[Grant]
    region: str
    created: float
    versioning: str = ""  # "" (never versioned) | "Enabled" | "Suspended"
    tags: list[tuple[str, str]] = msgspec.field(default_factory=list)  # bucket tagging, in the order given


class ManagerError(Exception):
    """A refused manager operation; ``code`` is a short machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AlreadyExists(ManagerError):
    pass


class NotFound(ManagerError):
    pass


#: what the numeric roles of the user table mean (the numbers are LeoFS's: 1 general, 9 admin)
ROLE_NAMES = {ROLE_GENERAL: "general", ROLE_ADMIN: "admin"}


def role_name(role: int) -> str:
    """The name of a user role, for listings."""
    return ROLE_NAMES.get(role, f"role {role}")


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def canned_grants(acl: str, owner: str) -> list[Grant]:
    """The grants a canned ACL stands for (AWS "Canned ACL" table)."""
    grants = [Grant("CanonicalUser", owner, "FULL_CONTROL")]
    if acl == "public-read":
        grants.append(Grant("Group", ALL_USERS, "READ"))
    elif acl == "public-read-write":
        grants += [Grant("Group", ALL_USERS, "READ"), Grant("Group", ALL_USERS, "WRITE")]
    elif acl == "authenticated-read":
        grants.append(Grant("Group", AUTHENTICATED_USERS, "READ"))
    elif acl != "private":
        raise ManagerError("invalid", f"unknown canned ACL {acl!r}")
    return grants
