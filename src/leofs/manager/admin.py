"""The admin API behind ``leofs adm``: one POST per command, JSON in and out.

``POST /adm/<command>`` with a JSON object of arguments; the caller proves it belongs to the cluster
with the shared secret in ``X-Leofs-Cluster-Secret``. The protocol (answers, errors, the secret
check) is :mod:`leofs.internal.admin_http`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from leofs.accounts import CANNED_ACLS, ROLE_ADMIN, ROLE_GENERAL, Bucket, canned_grants, role_name
from leofs.internal.admin_http import AdminError, Command, arg, make_admin_app, run_command
from leofs.internal.secret import SecretGuard
from leofs.manager.store import ManagerStore
from leofs.names import INVALID_BUCKET_NAME, is_valid_bucket_name

log = logging.getLogger("leofs.manager.admin")


class AdminAPI:
    """Command table of the admin API. Roles register extra commands (storage: du, compaction)."""

    def __init__(self, store: ManagerStore, secret: str, *, remove_bucket: Callable[[Bucket], Awaitable[None]],
                 info: Callable[[], dict[str, Any]] | None = None) -> None:
        """``remove_bucket`` deletes a bucket the way S3 DeleteBucket does (fenced against writes in
        flight, refused with AdminError not_empty): the embedded server's gateway, or in a cluster
        a gateway the manager forwards to."""
        self.store = store
        self.remove_bucket = remove_bucket
        self.secret = secret
        self.guard = SecretGuard(secret)
        self.info = info or (lambda: {})
        self.commands: dict[str, Command] = {
            "status": self.status,
            "create-user": self.create_user,
            "delete-user": self.delete_user,
            "get-users": self.get_users,
            "add-bucket": self.add_bucket,
            "delete-bucket": self.delete_bucket,
            "get-buckets": self.get_buckets,
            "get-bucket": self.get_buckets,
            "update-acl": self.update_acl,
            "add-endpoint": self.add_endpoint,
            "set-endpoint": self.add_endpoint,
            "delete-endpoint": self.delete_endpoint,
            "get-endpoints": self.get_endpoints,
        }

    def make_app(self) -> web.Application:
        """The embedded server's admin listener: these commands behind the cluster secret."""
        return make_admin_app(self.commands, self.guard)

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /adm/<command>`` on an application that checks the secret (the manager's)."""
        return await run_command(self.commands, request)

    # -- commands ---------------------------------------------------------------------------------
    async def status(self, args: dict[str, Any]) -> Any:
        return {"time": time.time(), **self.info()}

    async def create_user(self, args: dict[str, Any]) -> Any:
        role = ROLE_ADMIN if args.get("admin") else ROLE_GENERAL
        user = self.store.create_user(
            arg(args, "user_id"), access_key=args.get("access_key"), secret_key=args.get("secret_key"), role=role,
            email=args.get("email"),
        )
        return {**msgspec.to_builtins(user), "role_name": role_name(user.role)}

    async def delete_user(self, args: dict[str, Any]) -> Any:
        self.store.delete_user(arg(args, "user_id"))
        return None

    async def get_users(self, args: dict[str, Any]) -> Any:
        return [
            {"user_id": u.user_id, "role": u.role, "role_name": role_name(u.role), "access_key": u.access_key,
             "canonical_id": u.canonical_id, "email": u.email,
             "created": u.created}
            for u in self.store.users()
        ]

    def _owner_key(self, args: dict[str, Any]) -> str:
        owner = arg(args, "access_key")
        if self.store.user_by_access_key(owner) is None:
            raise AdminError("not_found", f"no user with access key {owner!r}", 404)
        return owner

    async def add_bucket(self, args: dict[str, Any]) -> Any:
        name = arg(args, "bucket")
        if not is_valid_bucket_name(name):
            raise AdminError("bad_argument", INVALID_BUCKET_NAME)
        bucket = self.store.create_bucket(name, self._owner_key(args), acl=args.get("acl") or "private")
        return msgspec.to_builtins(bucket)

    async def delete_bucket(self, args: dict[str, Any]) -> Any:
        name = arg(args, "bucket")
        bucket = self.store.bucket(name)
        if bucket is None:
            raise AdminError("not_found", f"no bucket {name!r}", 404)
        if args.get("access_key") and args["access_key"] != bucket.owner:
            raise AdminError("forbidden", f"bucket {name!r} is not owned by {args['access_key']!r}", 403)
        await self.remove_bucket(bucket)
        return None

    async def get_buckets(self, args: dict[str, Any]) -> Any:
        owner = args.get("access_key") or None
        return [msgspec.to_builtins(b) for b in self.store.buckets(owner)]

    async def update_acl(self, args: dict[str, Any]) -> Any:
        name = arg(args, "bucket")
        acl = arg(args, "acl")
        if acl not in CANNED_ACLS:
            raise AdminError("bad_argument", f"ACL must be one of {', '.join(CANNED_ACLS)}")
        bucket = self.store.bucket(name)
        if bucket is None:
            raise AdminError("not_found", f"no bucket {name!r}", 404)
        if args.get("access_key") and args["access_key"] != bucket.owner:
            raise AdminError("forbidden", f"bucket {name!r} is not owned by {args['access_key']!r}", 403)
        return msgspec.to_builtins(self.store.set_bucket_acl(name, acl, canned_grants(acl, bucket.owner)))

    async def add_endpoint(self, args: dict[str, Any]) -> Any:
        self.store.add_endpoint(arg(args, "endpoint"))
        return self.store.endpoints()

    async def delete_endpoint(self, args: dict[str, Any]) -> Any:
        self.store.delete_endpoint(arg(args, "endpoint"))
        return self.store.endpoints()

    async def get_endpoints(self, args: dict[str, Any]) -> Any:
        return self.store.endpoints()
