"""The manager's state: users and their keys, buckets with their ACLs, endpoints, settings.

One small interface over SQLite (stdlib, WAL). DESIGN.md section 8: keep it small so that a
replicated store could replace SQLite for a highly available manager without touching callers.
Every mutation of users, buckets, endpoints or settings bumps a ``version`` counter (persisted, so it
never goes backwards across restarts) so caches (gateways) can tell when to refresh; listeners
registered with :meth:`ManagerStore.add_listener` hear about every bump.

The cluster manager also keeps its members and the current and previous ring here. Those do not
bump ``version``: gateways learn about them through heartbeats, not through the state long-poll.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from leofs.accounts import ROLE_GENERAL, AlreadyExists, Bucket, Grant, ManagerError, NotFound, User, canned_grants
from leofs.fsmode import make_private_sqlite
from leofs.internal.messages import Consistency, NodeInfo

DEFAULT_ENDPOINTS = ("localhost", "s3.amazonaws.com")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, access_key TEXT UNIQUE NOT NULL, secret_key TEXT NOT NULL,
    role INTEGER NOT NULL, created REAL NOT NULL, canonical_id TEXT, email TEXT);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, acl TEXT NOT NULL, grants BLOB NOT NULL,
    region TEXT NOT NULL, created REAL NOT NULL, tags BLOB);
CREATE TABLE IF NOT EXISTS endpoints (host TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    name TEXT PRIMARY KEY, type TEXT NOT NULL, address TEXT NOT NULL, state TEXT NOT NULL,
    rack TEXT, vnodes INTEGER NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rings (slot TEXT PRIMARY KEY, data BLOB NOT NULL);
"""

_VERSION_SETTING = "state_version"
_USER_COLUMNS = "user_id, access_key, secret_key, role, created, canonical_id, COALESCE(email, '')"

_grants_encoder = msgspec.json.Encoder()
_grants_decoder = msgspec.json.Decoder(list[Grant])
_tags_decoder = msgspec.json.Decoder(list[tuple[str, str]])
_BUCKET_COLUMNS = "name, owner, acl, grants, region, created, versioning, tags"


def new_canonical_id() -> str:
    """A user's canonical id: 64 lower-case hex characters, as in S3, unrelated to its keys."""
    return secrets.token_hex(32)


def generate_keys(user_id: str) -> tuple[str, str]:
    """A new access key (20 upper-case hex chars) and secret key (40 chars), LeoFS-style lengths."""
    seed = f"{user_id}/{time.time_ns()}/{secrets.token_hex(16)}".encode()
    access = hashlib.sha1(seed).hexdigest()[:20].upper()
    secret = secrets.token_urlsafe(30)[:40]
    return access, secret


class ManagerStore:
    """Users, buckets, endpoints and settings in one SQLite database. Thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._migrate_canonical_ids()
            self._add_column("buckets", "versioning", "TEXT NOT NULL DEFAULT ''")  # "": never versioned
            self._add_column("buckets", "tags", "BLOB")  # bucket tagging
            self._add_column("users", "email", "TEXT",  # grants by e-mail address
                             "CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(email) WHERE email IS NOT NULL")
            make_private_sqlite(path)  # every user's secret key: never readable by other local users
            if self._db.execute("SELECT COUNT(*) FROM endpoints").fetchone()[0] == 0 and not self._setting(
                "endpoints_initialized"
            ):
                now = time.time()
                for host in DEFAULT_ENDPOINTS:
                    self._db.execute("INSERT INTO endpoints VALUES (?, ?)", (host, now))
                self._db.execute("INSERT OR REPLACE INTO settings VALUES ('endpoints_initialized', '1')")
            self.version = int(self._setting(_VERSION_SETTING) or 0)
            self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
            self._foreign_changes = 0
        self._listeners: list[Callable[[int], None]] = []

    def _migrate_canonical_ids(self) -> None:
        """Databases from before canonical ids: add the column and give every user one.

        In one write transaction: the embedded server's worker processes open the database at
        the same time, and only the first may migrate.
        """
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {str(row[1]) for row in self._db.execute("PRAGMA table_info(users)")}
            if "canonical_id" not in columns:
                self._db.execute("ALTER TABLE users ADD COLUMN canonical_id TEXT")
            missing = [str(r[0]) for r in self._db.execute(
                "SELECT user_id FROM users WHERE canonical_id IS NULL OR canonical_id = ''")]
            for user_id in missing:
                self._db.execute("UPDATE users SET canonical_id = ? WHERE user_id = ?", (new_canonical_id(), user_id))
            self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS users_canonical_id ON users(canonical_id)")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _add_column(self, table: str, column: str, ddl: str, *extra: str) -> None:
        """Databases from before ``column``: add it (``ddl``, then ``extra`` statements), in one write
        transaction as for canonical ids, so that concurrent openers do not both add it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {str(row[1]) for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
            for statement in extra:
                self._db.execute(statement)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _setting(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _changed(self) -> None:
        # Called with the lock held, right after a mutation.
        self.version += 1
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (_VERSION_SETTING, str(self.version)))
        for listener in self._listeners:
            listener(self.version)

    def change_token(self) -> tuple[int, int]:
        """A value that changes whenever anything in the database changed: through this store
        (``version``) or through another connection, e.g. the embedded server's other worker
        processes (SQLite's ``data_version``). Cheap enough to call on every request."""
        with self._lock:
            dv = self._db.execute("PRAGMA data_version").fetchone()[0]
            if dv != self._data_version:
                self._data_version = dv
                self._foreign_changes += 1
            return self.version, self._foreign_changes

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(new_version)`` after every change (from the mutating thread, lock held).

        Listeners must be quick and must not call back into the store.
        """
        self._listeners.append(listener)

    # -- settings -------------------------------------------------------------------------------
    def get_setting(self, name: str, default: str | None = None) -> str | None:
        with self._lock:
            value = self._setting(name)
        return default if value is None else value

    def set_setting(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (name, value))
            self._changed()

    # -- users ----------------------------------------------------------------------------------
    def create_user(
        self,
        user_id: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        role: int = ROLE_GENERAL,
        email: str | None = None,
    ) -> User:
        """Create a user with the given keys, or generated ones, and optionally an e-mail address
        (unique; what ACL grants by e-mail address resolve)."""
        if not user_id or len(user_id) > 256:
            raise ManagerError("invalid", "user id must be 1..256 characters")
        address = (email or "").strip().lower()
        if email is not None and (not 3 <= len(address) <= 254 or address.count("@") != 1
                                  or address.startswith("@") or address.endswith("@")):
            raise ManagerError("invalid", f"not an e-mail address: {email!r}")
        gen_access, gen_secret = generate_keys(user_id)
        user = User(user_id, access_key or gen_access, secret_key or gen_secret, role, time.time(), new_canonical_id(),
                    address)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users (user_id, access_key, secret_key, role, created, canonical_id, email) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (user.user_id, user.access_key, user.secret_key, user.role, user.created, user.canonical_id,
                     address or None),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("exists", f"user {user_id!r}, its access key or its e-mail address already "
                                    "exists") from None
            self._changed()
        return user

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            if cur.rowcount == 0:
                raise NotFound("not_found", f"no user {user_id!r}")
            self._changed()

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY user_id").fetchall()
        return [User(*row) for row in rows]

    def user_by_access_key(self, access_key: str) -> User | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE access_key = ?", (access_key,)).fetchone()
        return None if row is None else User(*row)

    def user_by_canonical_id(self, canonical_id: str) -> User | None:
        """The user whose canonical id (Owner/Grantee ID in S3 answers) is ``canonical_id``."""
        with self._lock:
            row = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE canonical_id = ?",
                                   (canonical_id,)).fetchone()
        return None if row is None else User(*row)

    def user_by_email(self, email: str) -> User | None:
        """The user with e-mail address ``email`` (case-insensitive)."""
        with self._lock:
            row = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?",
                                   (email.strip().lower(),)).fetchone()
        return None if row is None else User(*row)

    # -- buckets --------------------------------------------------------------------------------
    def create_bucket(self, name: str, owner: str, *, acl: str = "private", region: str = "us-east-1",
                      grants: list[Grant] | None = None) -> Bucket:
        """Create a bucket; AlreadyExists carries code ``owned`` when ``owner`` already owns it."""
        bucket = Bucket(name, owner, acl, grants if grants is not None else canned_grants(acl, owner),
                        region, time.time())
        with self._lock:
            row = self._db.execute("SELECT owner FROM buckets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                code = "owned" if row[0] == owner else "exists"
                raise AlreadyExists(code, f"bucket {name!r} already exists")
            self._db.execute(
                f"INSERT INTO buckets ({_BUCKET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, '', NULL)",
                (name, owner, bucket.acl, _grants_encoder.encode(bucket.grants), region, bucket.created),
            )
            self._changed()
        return bucket

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM buckets WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise NotFound("not_found", f"no bucket {name!r}")
            self._changed()

    def bucket(self, name: str) -> Bucket | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
        return None if row is None else _bucket(row)

    def buckets(self, owner: str | None = None) -> list[Bucket]:
        with self._lock:
            if owner is None:
                rows = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets ORDER BY name").fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE owner = ? ORDER BY name", (owner,)
                ).fetchall()
        return [_bucket(row) for row in rows]

    def set_bucket_acl(self, name: str, acl: str, grants: list[Grant] | None = None) -> Bucket:
        with self._lock:
            row = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound("not_found", f"no bucket {name!r}")
            owner = row[1]
            new_grants = grants if grants is not None else canned_grants(acl, owner)
            self._db.execute(
                "UPDATE buckets SET acl = ?, grants = ? WHERE name = ?",
                (acl, _grants_encoder.encode(new_grants), name),
            )
            self._changed()
            row = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
        return _bucket(row)

    def set_bucket_tags(self, name: str, tags: list[tuple[str, str]]) -> Bucket:
        """Replace a bucket's tag set (empty: delete it)."""
        with self._lock:
            cur = self._db.execute("UPDATE buckets SET tags = ? WHERE name = ?",
                                   (_grants_encoder.encode(tags) if tags else None, name))
            if cur.rowcount == 0:
                raise NotFound("not_found", f"no bucket {name!r}")
            self._changed()
            row = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
        return _bucket(row)

    def set_bucket_versioning(self, name: str, status: str) -> Bucket:
        """Set a bucket's versioning state ("Enabled" or "Suspended"; never back to unversioned)."""
        if status not in ("Enabled", "Suspended"):
            raise ManagerError("invalid", f"versioning status must be Enabled or Suspended, not {status!r}")
        with self._lock:
            cur = self._db.execute("UPDATE buckets SET versioning = ? WHERE name = ?", (status, name))
            if cur.rowcount == 0:
                raise NotFound("not_found", f"no bucket {name!r}")
            self._changed()
            row = self._db.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)).fetchone()
        return _bucket(row)

    # -- endpoints ------------------------------------------------------------------------------
    def add_endpoint(self, host: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?)", (host.lower(), time.time()))
            self._changed()

    def delete_endpoint(self, host: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM endpoints WHERE host = ?", (host.lower(),))
            if cur.rowcount == 0:
                raise NotFound("not_found", f"no endpoint {host!r}")
            self._changed()

    def endpoints(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT host FROM endpoints ORDER BY host").fetchall()
        return [str(r[0]) for r in rows]


    # -- consistency (cluster manager) ----------------------------------------------------------
    def consistency(self) -> Consistency | None:
        """The persisted N/W/R/D, or None before the first start."""
        value = self.get_setting("consistency")
        return None if value is None else msgspec.json.decode(value, type=Consistency)

    def set_consistency(self, levels: Consistency) -> None:
        self.set_setting("consistency", msgspec.json.encode(levels).decode())

    # -- members (cluster manager) --------------------------------------------------------------
    def save_member(self, node: NodeInfo) -> None:
        """Insert or replace a member (its reported ring hashes are runtime state, not stored)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?, ?, ?)",
                (node.name, node.type, node.address, node.state, node.rack, node.vnodes, node.updated),
            )

    def delete_member(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM members WHERE name = ?", (name,))

    def members(self) -> list[NodeInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, type, address, state, rack, vnodes, updated FROM members ORDER BY name"
            ).fetchall()
        return [
            NodeInfo(name=r[0], type=r[1], address=r[2], state=r[3], rack=r[4], vnodes=r[5], updated=r[6])
            for r in rows
        ]

    # -- rings (cluster manager) ----------------------------------------------------------------
    def save_rings(self, current: bytes, previous: bytes) -> None:
        """Store the current and previous ring (``Ring.to_bytes()``) together, atomically."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO rings VALUES ('current', ?)", (current,))
                self._db.execute("INSERT OR REPLACE INTO rings VALUES ('previous', ?)", (previous,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rings(self) -> tuple[bytes, bytes] | None:
        """(current, previous) ring bytes, or None before ``adm start``."""
        with self._lock:
            rows: dict[str, bytes] = {str(r[0]): bytes(r[1]) for r in self._db.execute("SELECT slot, data FROM rings")}
        if "current" not in rows:
            return None
        return rows["current"], rows.get("previous", rows["current"])


def _bucket(row: tuple[object, ...]) -> Bucket:
    name, owner, acl, grants, region, created, versioning, tags = row
    assert isinstance(grants, bytes)
    assert tags is None or isinstance(tags, bytes)
    return Bucket(str(name), str(owner), str(acl), _grants_decoder.decode(grants), str(region), float(created),  # type: ignore[arg-type]
                  str(versioning or ""), _tags_decoder.decode(tags) if tags else [])
