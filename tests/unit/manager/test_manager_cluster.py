"""Cluster logic: the first ring, admin transitions, ring-hash agreement, consistency levels."""

from __future__ import annotations

from pathlib import Path

import pytest

from leofs.accounts import ManagerError
from leofs.internal.messages import Consistency, HeartbeatRequest, RegisterRequest
from leofs.manager.cluster import Cluster
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore
from leofs.ring import Member, build_ring, ring_from_bytes

LEVELS = Consistency(3, 2, 1, 2)


def make(tmp_path: Path, levels: Consistency = LEVELS) -> Cluster:
    store = ManagerStore(tmp_path / "m.sqlite3")
    return Cluster(store, Members(store, clock=lambda: 0.0), levels)


def attach(cluster: Cluster, *names: str, rack: str | None = None) -> None:
    for i, name in enumerate(names):
        cluster.members.register(RegisterRequest("storage", name, f"127.0.0.1:{4001 + i}", rack=rack, vnodes=100 + i))


def agree(cluster: Cluster, *names: str) -> None:
    current, previous = cluster.hashes
    for name in names:
        cluster.members.heartbeat(HeartbeatRequest("storage", name, current, previous))


def code(exc: pytest.ExceptionInfo[ManagerError]) -> str:
    return exc.value.code


def test_start_builds_the_ring_of_the_attached_nodes(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3")
    cluster.members.register(RegisterRequest("gateway", "g1", "127.0.0.1:8080"))
    ring = cluster.start()
    expected = build_ring([Member(n.name, n.address, rack=n.rack, vnodes=n.vnodes)
                           for n in cluster.members.nodes("storage")], replicas=3)
    assert ring.hash == expected.hash
    assert cluster.hashes == (expected.hash, expected.hash)  # the first ring is its own previous
    assert {n.name: n.state for n in cluster.members.nodes()} == {
        "s1": "running", "s2": "running", "s3": "running", "g1": "running"}
    view = cluster.view()
    assert ring_from_bytes(view.ring_current).hash == expected.hash
    assert view.state == "running" and view.consistency == Consistency(3, 2, 1, 2)
    assert cluster.view(with_rings=False).ring_current == b""
    with pytest.raises(ManagerError) as err:
        cluster.start()
    assert code(err) == "already_started"


def test_start_needs_n_attached_nodes(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2")
    with pytest.raises(ManagerError) as err:
        cluster.start()
    assert code(err) == "not_enough_nodes"
    assert not cluster.started


def test_racks_make_the_first_ring_rack_aware(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3", rack="r1")
    assert cluster.start().rack_aware_replicas == 3


def test_ring_and_levels_survive_a_restart_and_n_is_fixed(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3")
    ring = cluster.start()
    cluster.store.close()
    store = ManagerStore(tmp_path / "m.sqlite3")
    again = Cluster(store, Members(store, clock=lambda: 0.0), Consistency(1, 1, 1, 1))
    assert again.hashes == (ring.hash, ring.hash)
    assert again.levels == Consistency(3, 2, 1, 2)
    assert again.members.in_ring == {"s1", "s2", "s3"}


def test_levels_from_options_apply_until_start(tmp_path: Path) -> None:
    cluster = make(tmp_path, Consistency(1, 1, 1, 1))
    cluster.store.close()
    store = ManagerStore(tmp_path / "m.sqlite3")
    assert Cluster(store, Members(store), Consistency(3, 2, 1, 2)).levels == Consistency(3, 2, 1, 2)


def test_update_consistency_level_validation(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    assert cluster.update_levels(3, 3, 1) == Consistency(3, 3, 3, 1)
    for w, r, d in ((0, 1, 1), (1, 4, 1), (1, 1, 0), (4, 1, 1)):
        with pytest.raises(ManagerError) as err:
            cluster.update_levels(w, r, d)
        assert code(err) == "bad_argument"
    assert cluster.store.consistency() == Consistency(3, 3, 3, 1)


def test_suspend_resume_detach(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3", "s4")
    cluster.start()
    agree(cluster, "s1", "s2", "s3", "s4")
    assert cluster.suspend("s1").state == "suspend"
    with pytest.raises(ManagerError) as err:
        cluster.suspend("s1")
    assert code(err) == "bad_state"
    assert cluster.resume("s1").state == "running"
    with pytest.raises(ManagerError) as err:
        cluster.resume("s2")
    assert code(err) == "bad_state"
    with pytest.raises(ManagerError) as err:
        cluster.suspend("nope")
    assert code(err) == "not_found"
    assert cluster.detach("s4").state == "detached"
    # N=3: a second detach would leave two nodes in the ring
    with pytest.raises(ManagerError) as err:
        cluster.detach("s3")
    assert code(err) == "not_enough_nodes"
    assert cluster.resume("s4").state == "running"  # undo: it is still in the ring


def test_membership_changes_refused_while_hashes_disagree(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3", "s4")
    cluster.start()
    agree(cluster, "s1", "s2", "s3")
    cluster.members.heartbeat(HeartbeatRequest("storage", "s4", "deadbeef", "deadbeef"))
    assert [n.name for n in cluster.disagreeing()] == ["s4"]
    with pytest.raises(ManagerError) as err:
        cluster.detach("s1")
    assert code(err) == "ring_inconsistent"
    assert "s4=deadbeef" in str(err.value)
    agree(cluster, "s4")
    assert cluster.detach("s1").state == "detached"
