"""A bucket's versioning state in the manager's database: never versioned, Enabled, Suspended;
a database from before versioning is migrated (its buckets never versioned)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from leofs.accounts import ManagerError, NotFound
from leofs.manager.store import ManagerStore


def test_versioning_state_is_kept(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.db")
    created = store.create_bucket("b", "OWNER")
    assert created.versioning == ""
    assert store.set_bucket_versioning("b", "Enabled").versioning == "Enabled"
    assert store.set_bucket_versioning("b", "Suspended").versioning == "Suspended"
    with pytest.raises(ManagerError):
        store.set_bucket_versioning("b", "")  # never back to unversioned
    with pytest.raises(NotFound):
        store.set_bucket_versioning("nope", "Enabled")
    store.close()
    reopened = ManagerStore(tmp_path / "m.db")
    bucket = reopened.bucket("b")
    assert bucket is not None and bucket.versioning == "Suspended" and bucket.created == created.created
    # what a cluster manager sends its gateways carries the state (RemoteControl decodes it)
    assert msgspec.to_builtins(bucket)["versioning"] == "Suspended"


def test_a_database_from_before_versioning_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE buckets (name TEXT PRIMARY KEY, owner TEXT NOT NULL, acl TEXT NOT NULL, "
               "grants BLOB NOT NULL, region TEXT NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO buckets VALUES ('old', 'OWNER', 'private', ?, 'us-east-1', 1.0)", (b"[]",))
    db.commit()
    db.close()
    store = ManagerStore(path)
    old = store.bucket("old")
    assert old is not None and old.versioning == "" and old.created == 1.0
    store.create_bucket("new", "OWNER")
    assert store.set_bucket_versioning("old", "Enabled").versioning == "Enabled"
    assert [b.name for b in store.buckets()] == ["new", "old"]
    store.close()
    assert ManagerStore(path).bucket("old") is not None  # opened again: migrated once
