"""The gateway's view of the control plane: credentials, buckets, endpoints.

The gateway reads these on every request, so it reads them from memory: the embedded server's
``LocalControl`` (:mod:`leofs.embedded_control`) caches the manager's database on the same host,
a cluster gateway's ``RemoteControl`` the manager's state over HTTP.
"""

from __future__ import annotations

from typing import Protocol

from leofs.accounts import Bucket, Grant, User


class ControlPlane(Protocol):
    """What the gateway needs from the manager."""

    def begin_request(self) -> None:
        """Called once at the start of every request: drop what changed since the last one."""
        ...

    def user(self, access_key: str) -> User | None: ...

    def user_by_canonical_id(self, canonical_id: str) -> User | None:
        """The user an S3 client names by its canonical id (grants by ``id=``)."""
        ...

    def user_by_email(self, email: str) -> User | None:
        """The user an ACL grant names by e-mail address (AmazonCustomerByEmail)."""
        ...

    def bucket(self, name: str) -> Bucket | None: ...

    def buckets(self, owner: str) -> list[Bucket]: ...

    def endpoints(self) -> list[str]: ...

    async def create_bucket(self, name: str, owner: str, *, acl: str, region: str,
                            grants: list[Grant] | None = None) -> Bucket: ...

    async def delete_bucket(self, name: str) -> None: ...

    async def set_bucket_acl(self, name: str, acl: str, grants: list[Grant] | None = None) -> Bucket: ...

    async def set_bucket_versioning(self, name: str, status: str) -> Bucket:
        """Set the bucket's versioning state: "Enabled" or "Suspended"."""
        ...

    async def set_bucket_tags(self, name: str, tags: list[tuple[str, str]]) -> Bucket:
        """Replace a bucket's tag set (empty: no tags). NotFound when the bucket is gone."""
        ...
