"""Users' canonical ids: 64 hex characters, unrelated to the access key, kept in the manager's
database, and given to existing users when a database from before them is opened."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from leofs.manager.store import ManagerStore

HEX64 = re.compile("[0-9a-f]{64}")


def test_new_users_get_a_canonical_id(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.db")
    alice = store.create_user("alice")
    bob = store.create_user("bob", access_key="BOBKEY", secret_key="s" * 40)
    for user in (alice, bob):
        assert HEX64.fullmatch(user.canonical_id)
        assert user.access_key.lower() not in user.canonical_id
    assert alice.canonical_id != bob.canonical_id
    assert store.user_by_canonical_id(bob.canonical_id) == bob
    assert store.user_by_canonical_id(bob.access_key) is None
    assert store.user_by_access_key("BOBKEY") == bob
    store.close()
    reopened = ManagerStore(tmp_path / "m.db")
    assert {u.user_id: u.canonical_id for u in reopened.users()} == {"alice": alice.canonical_id,
                                                                     "bob": bob.canonical_id}


def test_an_old_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, access_key TEXT UNIQUE NOT NULL, "
               "secret_key TEXT NOT NULL, role INTEGER NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO users VALUES ('root', 'ROOTKEY', 'secret', 9, 1.0)")
    db.execute("INSERT INTO users VALUES ('carol', 'CAROLKEY', 'secret2', 1, 2.0)")
    db.commit()
    db.close()
    store = ManagerStore(path)
    users = {u.user_id: u for u in store.users()}
    assert HEX64.fullmatch(users["root"].canonical_id) and HEX64.fullmatch(users["carol"].canonical_id)
    assert users["root"].canonical_id != users["carol"].canonical_id
    assert users["root"].secret_key == "secret" and users["root"].role == 9
    assert store.user_by_canonical_id(users["carol"].canonical_id) == users["carol"]
    store.close()
    # opened again (or by a second process), the ids stay
    again = ManagerStore(path)
    assert {u.user_id: u.canonical_id for u in again.users()} == {k: u.canonical_id for k, u in users.items()}
    new = again.create_user("dave")
    assert HEX64.fullmatch(new.canonical_id)
