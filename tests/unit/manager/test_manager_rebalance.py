"""Cluster.rebalance / settle / rollback on the manager's store (no processes): refusals and persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from leofs.accounts import ManagerError
from leofs.internal.messages import Consistency, HeartbeatRequest, RegisterRequest
from leofs.manager.cluster import Cluster
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore


def make(path: Path) -> Cluster:
    store = ManagerStore(path / "m.sqlite3")
    return Cluster(store, Members(store, clock=lambda: 0.0), Consistency(3, 2, 1, 2))


def attach(cluster: Cluster, *names: str) -> None:
    for name in names:
        cluster.members.register(RegisterRequest("storage", name, f"127.0.0.1:{4000 + int(name[1:])}"))


def agree(cluster: Cluster, *names: str, hashes: tuple[str, str] | None = None) -> None:
    current, previous = hashes or cluster.hashes
    for name in names:
        cluster.members.heartbeat(HeartbeatRequest("storage", name, current, previous))


def test_rebalance_persists_the_pair_and_settle_ends_it(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3")
    first = cluster.start()
    agree(cluster, "s1", "s2", "s3")
    with pytest.raises(ManagerError) as err:
        cluster.rebalance()
    assert err.value.code == "nothing_to_do"
    attach(cluster, "s4")
    pair = cluster.rebalance()
    assert pair.previous.hash == first.hash and pair.rebalancing and "s4" in pair.current
    assert cluster.members.get("s4").state == "running"  # type: ignore[union-attr]
    # the new ring was placed from the previous one: only s4 gains copies
    for old, new in zip(first.partition_lists(), pair.current.partition_lists(), strict=True):
        assert {m.name for m in new} - {m.name for m in old} <= {"s4"}
    # a manager restarted here routes with the same bytes, still rebalancing
    cluster.store.close()
    again = make(tmp_path)
    assert again.rings is not None and again.rings.hashes == pair.hashes
    assert again.rings.current.to_bytes() == pair.current.to_bytes()
    agree(again, "s1", "s2", "s3", "s4")
    with pytest.raises(ManagerError) as err:
        again.detach("s1")
    assert err.value.code == "busy"
    with pytest.raises(ManagerError) as err:
        again.rebalance()
    assert err.value.code == "busy"
    settled = again.settle()
    assert not settled.rebalancing and settled.current.hash == pair.current.hash
    again.store.close()
    assert make(tmp_path).hashes == (pair.current.hash, pair.current.hash)


def test_membership_changes_are_refused_while_ring_hashes_disagree(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3", "s4")
    cluster.start()
    agree(cluster, "s1", "s2", "s3")
    agree(cluster, "s4", hashes=("deadbeef", "deadbeef"))  # s4 routes with another ring
    for change in (lambda: cluster.detach("s1"), cluster.rebalance, lambda: cluster.rollback("s1")):
        with pytest.raises(ManagerError) as err:
            change()
        assert err.value.code == "ring_inconsistent"
    agree(cluster, "s4")
    cluster.detach("s1")
    assert cluster.rollback("s1").state == "running"  # undone before any rebalance
    cluster.detach("s1")
    pair = cluster.rebalance()
    assert "s1" not in pair.current and "s1" in pair.previous
    agree(cluster, "s2", "s3", "s4")
    with pytest.raises(ManagerError) as err:  # applied by a rebalance: too late to roll back
        cluster.rollback("s1")
    assert err.value.code in ("busy", "bad_state")


def test_a_store_with_an_unreadable_ring_is_refused_clearly(tmp_path: Path) -> None:
    cluster = make(tmp_path)
    attach(cluster, "s1", "s2", "s3")
    cluster.start()
    old = b"\x95\x01\x03\x00\x90\xa8deadbeef"  # a format-1 snapshot (version, N, k, members, hash)
    cluster.store.save_rings(old, old)
    cluster.store.close()
    with pytest.raises(ManagerError) as err:
        make(tmp_path)
    assert err.value.code == "bad_state" and "ring" in str(err.value).lower()
