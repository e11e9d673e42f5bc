"""The embedded server's control plane: the manager's database on this host, as a gateway sees it.

:class:`LocalControl` is the only code that wraps :class:`~leofs.manager.store.ManagerStore` for a
gateway (embedded server, any of its worker processes); it caches what it reads until the database
changes. A cluster gateway uses :class:`~leofs.gateway.remote_control.RemoteControl` instead.
"""

from __future__ import annotations

from leofs.accounts import Bucket, Grant, User
from leofs.manager.store import ManagerStore


class LocalControl:
    """The manager's database on this host, with read caches that are dropped whenever it changed
    (here or in another process of the same server)."""

    def __init__(self, store: ManagerStore, *, shared: bool = False) -> None:
        self.store = store
        self.shared = shared  # other processes write the same database (embedded server's workers)
        self._version: tuple[int, int] = (-1, -1)
        self._users: dict[str, User | None] = {}
        self._canonical: dict[str, User | None] = {}
        self._buckets: dict[str, Bucket | None] = {}
        self._endpoints: list[str] = []
        self.begin_request()

    def begin_request(self) -> None:
        """One check per request (not per lookup) whether the database changed anywhere."""
        token = self.store.change_token() if self.shared else (self.store.version, 0)
        if self._version != token:
            self._users.clear()
            self._canonical.clear()
            self._buckets.clear()
            self._endpoints = self.store.endpoints()
            self._version = token

    def _invalidate(self) -> None:
        self._version = (-1, -1)
        self.begin_request()

    def user(self, access_key: str) -> User | None:
        try:
            return self._users[access_key]
        except KeyError:
            user = self._users[access_key] = self.store.user_by_access_key(access_key)
            return user

    def user_by_email(self, email: str) -> User | None:
        return self.store.user_by_email(email)  # grants by e-mail are rare: not cached

    def user_by_canonical_id(self, canonical_id: str) -> User | None:
        try:
            return self._canonical[canonical_id]
        except KeyError:
            user = self._canonical[canonical_id] = self.store.user_by_canonical_id(canonical_id)
            return user

    def bucket(self, name: str) -> Bucket | None:
        try:
            return self._buckets[name]
        except KeyError:
            bucket = self._buckets[name] = self.store.bucket(name)
            return bucket

    def buckets(self, owner: str) -> list[Bucket]:
        return self.store.buckets(owner)

    def endpoints(self) -> list[str]:
        return self._endpoints

    async def create_bucket(self, name: str, owner: str, *, acl: str, region: str,
                            grants: list[Grant] | None = None) -> Bucket:
        try:
            return self.store.create_bucket(name, owner, acl=acl, region=region, grants=grants)
        finally:
            self._invalidate()

    async def delete_bucket(self, name: str) -> None:
        try:
            self.store.delete_bucket(name)
        finally:
            self._invalidate()

    async def set_bucket_acl(self, name: str, acl: str, grants: list[Grant] | None = None) -> Bucket:
        try:
            return self.store.set_bucket_acl(name, acl, grants)
        finally:
            self._invalidate()

    async def set_bucket_versioning(self, name: str, status: str) -> Bucket:
        try:
            return self.store.set_bucket_versioning(name, status)
        finally:
            self._invalidate()

    async def set_bucket_tags(self, name: str, tags: list[tuple[str, str]]) -> Bucket:
        try:
            return self.store.set_bucket_tags(name, tags)
        finally:
            self._invalidate()
