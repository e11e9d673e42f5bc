"""Two ManagerStore connections to one database (the embedded server's processes): each sees the
other's changes through ``change_token``, which LocalControl keys its caches on."""

from __future__ import annotations

from pathlib import Path

from leofs.embedded_control import LocalControl
from leofs.manager.store import ManagerStore


def test_changes_made_through_another_connection_change_the_token(tmp_path: Path) -> None:
    a = ManagerStore(tmp_path / "m.sqlite3")
    b = ManagerStore(tmp_path / "m.sqlite3")
    a.create_user("alice")
    token = b.change_token()
    assert b.change_token() == token  # nothing changed
    a.create_bucket("photos", "alice")
    assert b.change_token() != token
    token = b.change_token()
    b.create_bucket("music", "alice")  # its own change shows too
    assert b.change_token() != token
    a.close()
    b.close()


def test_local_control_drops_its_caches_on_a_foreign_change(tmp_path: Path) -> None:
    a = ManagerStore(tmp_path / "m.sqlite3")
    b = ManagerStore(tmp_path / "m.sqlite3")
    a.create_user("alice")
    control = LocalControl(b, shared=True)
    assert control.bucket("photos") is None  # cached as missing
    a.create_bucket("photos", "alice")
    assert control.bucket("photos") is None  # within a request the cache stands
    control.begin_request()  # the next request sees the change
    found = control.bucket("photos")
    assert found is not None and found.owner == "alice"
    a.delete_bucket("photos")
    control.begin_request()
    assert control.bucket("photos") is None
    a.close()
    b.close()
