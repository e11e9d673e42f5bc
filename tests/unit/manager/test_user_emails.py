"""Users' e-mail addresses (what ACL grants by e-mail resolve): optional, unique, case-insensitive,
and added to a database from before them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from leofs.accounts import AlreadyExists, ManagerError
from leofs.manager.store import ManagerStore


def test_e_mail_addresses(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.db")
    alice = store.create_user("alice", email="Alice@Example.ORG")
    bob = store.create_user("bob")
    assert (alice.email, bob.email) == ("alice@example.org", "")
    assert store.user_by_email("ALICE@example.org") == alice
    assert store.user_by_email("") is None and store.user_by_email("bob@example.org") is None
    with pytest.raises(AlreadyExists):
        store.create_user("carol", email="alice@example.org")
    for bad in ("", "no-at-sign", "@example.org", "a@"):
        with pytest.raises(ManagerError):
            store.create_user("dave", email=bad)
    store.create_user("erin")  # many users without an address
    assert {u.user_id: u.email for u in store.users()} == {"alice": "alice@example.org", "bob": "", "erin": ""}


def test_an_old_database_gets_the_email_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, access_key TEXT UNIQUE NOT NULL, "
               "secret_key TEXT NOT NULL, role INTEGER NOT NULL, created REAL NOT NULL, canonical_id TEXT)")
    db.execute("INSERT INTO users VALUES ('root', 'ROOTKEY', 'secret', 9, 1.0, '" + "a" * 64 + "')")
    db.commit()
    db.close()
    store = ManagerStore(path)
    root = store.user_by_access_key("ROOTKEY")
    assert root is not None and root.email == "" and root.canonical_id == "a" * 64
    assert store.create_user("new", email="new@example.org").email == "new@example.org"
    store.close()
    assert ManagerStore(path).user_by_email("new@example.org") is not None
