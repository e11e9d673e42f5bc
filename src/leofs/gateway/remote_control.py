"""The gateway's control plane in a cluster: users, buckets and endpoints cached from the manager.

A background long-poll of ``GET /int/state`` keeps the cache current: a change on the manager
reaches every gateway within about a second. When the manager is down the gateway keeps serving
from the cache. Bucket changes made through S3 go to the manager, and the answer updates this
gateway's cache at once (read-your-writes on the gateway that made them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec

from leofs.accounts import AlreadyExists, Bucket, Grant, ManagerError, NotFound, User
from leofs.internal.client import InternalClient
from leofs.internal.messages import StateSnapshot, state_decoder

log = logging.getLogger("leofs.gateway.control")

class RemoteControl:
    """:class:`~leofs.gateway.control.ControlPlane` backed by the manager over HTTP."""

    def __init__(self, client: InternalClient, manager: str, *, wait: float = 20.0) -> None:
        self.client = client
        self.manager = manager
        self.wait = wait
        self.version = -1
        self._users: dict[str, User] = {}
        self._canonical: dict[str, User] = {}
        self._emails: dict[str, User] = {}
        self._buckets: dict[str, Bucket] = {}
        self._endpoints: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    # -- cache ----------------------------------------------------------------------------------------
    def _install(self, state: StateSnapshot) -> None:
        self._users = {
            u.access_key: User(u.user_id, u.access_key, u.secret_key, u.role, 0.0, u.canonical_id, u.email)
            for u in state.users
        }
        self._canonical = {u.canonical_id: u for u in self._users.values() if u.canonical_id}
        self._emails = {u.email: u for u in self._users.values() if u.email}
        self._buckets = {b.name: b for b in state.buckets}
        self._endpoints = list(state.endpoints)
        self.version = state.version
        self.loaded.set()

    async def refresh(self, wait: float = 0.0) -> None:
        """Fetch the state (long-polling up to ``wait`` seconds for a newer version)."""
        params = {"since": str(self.version if wait else -1), "wait": str(wait)}
        async with self.client.request("GET", self.manager, "/int/state", params=params) as resp:
            if resp.status != 200:
                raise ManagerError("unavailable", f"manager answered {resp.status}")
            self._install(state_decoder.decode(await resp.read()))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                await self.refresh(self.wait if self.loaded.is_set() else 0.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # manager down: serve from the cache, try again soon
                log.debug("manager %s unreachable: %s", self.manager, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- ControlPlane -------------------------------------------------------------------------------
    def begin_request(self) -> None:
        """Nothing to do per request: the long-poll keeps the caches current."""

    def user(self, access_key: str) -> User | None:
        return self._users.get(access_key)

    def user_by_canonical_id(self, canonical_id: str) -> User | None:
        return self._canonical.get(canonical_id)

    def user_by_email(self, email: str) -> User | None:
        return self._emails.get(email.strip().lower())

    def bucket(self, name: str) -> Bucket | None:
        return self._buckets.get(name)

    def buckets(self, owner: str) -> list[Bucket]:
        return sorted((b for b in self._buckets.values() if b.owner == owner), key=lambda b: b.name)

    def endpoints(self) -> list[str]:
        return self._endpoints

    async def _bucket_op(self, payload: dict[str, Any]) -> Any:
        async with self.client.request("POST", self.manager, "/int/bucket", json=payload) as resp:
            answer = json.loads(await resp.read())
        if not answer.get("ok"):
            code, message = str(answer.get("error")), str(answer.get("message", ""))
            if code in ("exists", "owned"):
                raise AlreadyExists(code, message)
            if code == "not_found":
                raise NotFound(code, message)
            raise ManagerError(code, message)
        return answer.get("result")

    async def create_bucket(self, name: str, owner: str, *, acl: str, region: str,
                            grants: list[Grant] | None = None) -> Bucket:
        result = await self._bucket_op({
            "op": "create", "name": name, "owner": owner, "acl": acl, "region": region,
            "grants": None if grants is None else msgspec.to_builtins(grants),
        })
        bucket = msgspec.convert(result, Bucket)
        self._buckets[name] = bucket
        return bucket

    async def delete_bucket(self, name: str) -> None:
        await self._bucket_op({"op": "delete", "name": name})
        self._buckets.pop(name, None)

    async def set_bucket_acl(self, name: str, acl: str, grants: list[Grant] | None = None) -> Bucket:
        result = await self._bucket_op({
            "op": "acl", "name": name, "acl": acl,
            "grants": None if grants is None else msgspec.to_builtins(grants),
        })
        bucket = msgspec.convert(result, Bucket)
        self._buckets[name] = bucket
        return bucket

    async def set_bucket_versioning(self, name: str, status: str) -> Bucket:
        result = await self._bucket_op({"op": "versioning", "name": name, "status": status})
        bucket = msgspec.convert(result, Bucket)
        self._buckets[name] = bucket
        return bucket

    async def set_bucket_tags(self, name: str, tags: list[tuple[str, str]]) -> Bucket:
        bucket = msgspec.convert(await self._bucket_op({"op": "tags", "name": name, "tags": tags}), Bucket)
        self._buckets[name] = bucket
        return bucket

