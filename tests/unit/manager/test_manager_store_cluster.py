"""The cluster additions of ManagerStore: members, rings, consistency, a version that survives restarts."""

from __future__ import annotations

from pathlib import Path

from leofs.internal.messages import Consistency, NodeInfo
from leofs.manager.store import ManagerStore
from leofs.ring import Member, build_ring


def test_members_persist_without_runtime_hashes(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    node = NodeInfo(name="s1", type="storage", address="127.0.0.1:4001", state="attached", rack="r1",
                    vnodes=200, ring_hash_current="abcd", updated=12.5)
    store.save_member(node)
    store.save_member(NodeInfo(name="g1", type="gateway", address="127.0.0.1:8080", state="running"))
    store.close()
    store = ManagerStore(tmp_path / "m.sqlite3")
    loaded = {n.name: n for n in store.members()}
    assert loaded["s1"] == NodeInfo(name="s1", type="storage", address="127.0.0.1:4001", state="attached",
                                    rack="r1", vnodes=200, updated=12.5)
    assert loaded["g1"].type == "gateway"
    store.delete_member("g1")
    assert [n.name for n in store.members()] == ["s1"]


def test_rings_current_and_previous(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    assert store.rings() is None
    one = build_ring([Member("a", "h:1"), Member("b", "h:2")], replicas=2)
    two = build_ring([Member("a", "h:1"), Member("b", "h:2"), Member("c", "h:3")], replicas=2)
    store.save_rings(two.to_bytes(), one.to_bytes())
    store.close()
    store = ManagerStore(tmp_path / "m.sqlite3")
    assert store.rings() == (two.to_bytes(), one.to_bytes())


def test_consistency_and_version_persist(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    assert store.consistency() is None
    seen: list[int] = []
    store.add_listener(seen.append)
    store.set_consistency(Consistency(3, 2, 1, 2))
    store.create_user("alice")
    version = store.version
    assert seen == [version - 1, version]
    store.close()
    store = ManagerStore(tmp_path / "m.sqlite3")
    assert store.consistency() == Consistency(3, 2, 1, 2)
    # a restarted manager never goes back to a version a gateway has already seen
    assert store.version == version
    store.add_endpoint("example.com")
    assert store.version == version + 1


def test_member_changes_do_not_bump_the_state_version(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    before = store.version
    store.save_member(NodeInfo(name="s1", type="storage", address="h:1", state="attached"))
    store.save_rings(b"x", b"x")
    assert store.version == before
