"""Bucket tag sets in the manager's database: stored with the bucket, and a database from before
bucket tagging is migrated (its buckets keep everything and have no tags)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from leofs.accounts import NotFound
from leofs.manager.store import ManagerStore


def test_tags_are_kept_with_the_bucket(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.db")
    store.create_bucket("b", "KEY")
    assert store.bucket("b").tags == []  # type: ignore[union-attr]
    version = store.version
    changed = store.set_bucket_tags("b", [("team", "storage"), ("a", "")])
    assert changed.tags == [("team", "storage"), ("a", "")] and store.version == version + 1
    store.close()
    again = ManagerStore(tmp_path / "m.db")
    assert again.bucket("b").tags == [("team", "storage"), ("a", "")]  # type: ignore[union-attr]
    assert again.buckets("KEY")[0].tags == [("team", "storage"), ("a", "")]
    assert again.set_bucket_tags("b", []).tags == []
    with pytest.raises(NotFound):
        again.set_bucket_tags("missing", [("a", "b")])
    again.delete_bucket("b")
    assert again.create_bucket("b", "KEY").tags == []  # a bucket created again has none


def test_an_old_database_gets_the_tags_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE buckets (name TEXT PRIMARY KEY, owner TEXT NOT NULL, acl TEXT NOT NULL, "
               "grants BLOB NOT NULL, region TEXT NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO buckets VALUES ('old', 'KEY', 'private', X'5B5D', 'us-east-1', 5.0)")
    db.commit()
    db.close()
    store = ManagerStore(path)
    old = store.bucket("old")
    assert old is not None
    assert (old.owner, old.acl, old.grants, old.created, old.tags) == ("KEY", "private", [], 5.0, [])
    assert store.set_bucket_tags("old", [("k", "v")]).tags == [("k", "v")]
    store.close()
    assert ManagerStore(path).bucket("old").tags == [("k", "v")]  # type: ignore[union-attr]
