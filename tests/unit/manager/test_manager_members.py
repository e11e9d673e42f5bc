"""The member state machine and heartbeat timeouts, driven by an injected clock (no sleeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from leofs.accounts import ManagerError
from leofs.internal.messages import HeartbeatRequest, RegisterRequest
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> ManagerStore:
    return ManagerStore(tmp_path / "m.sqlite3")


def storage(name: str, address: str = "127.0.0.1:4001", rack: str | None = None) -> RegisterRequest:
    return RegisterRequest(type="storage", name=name, address=address, rack=rack)


def beat(name: str, type_: str = "storage") -> HeartbeatRequest:
    return HeartbeatRequest(type=type_, name=name)


def test_register_states(store: ManagerStore) -> None:
    members = Members(store, clock=Clock())
    assert members.register(storage("s1")).state == "attached"
    assert members.register(RegisterRequest(type="gateway", name="g1", address="127.0.0.1:8080")).state == "running"
    v = members.version
    # re-registering unchanged is idempotent and does not count as a change
    assert members.register(storage("s1")).state == "attached"
    assert members.version == v
    members.set_state("s1", "running")
    assert members.register(storage("s1")).state == "running"
    members.set_state("s1", "detached")
    assert members.register(storage("s1")).state == "restarted"
    with pytest.raises(ManagerError) as err:
        members.register(RegisterRequest(type="gateway", name="s1", address="x:1"))
    assert err.value.code == "conflict"


def test_heartbeat_timeout_and_return(store: ManagerStore) -> None:
    clock = Clock()
    members = Members(store, clock=clock, timeout=3.0)
    members.register(storage("in-ring"))
    members.register(storage("new", "127.0.0.1:4002"))
    members.register(RegisterRequest(type="gateway", name="g1", address="127.0.0.1:8080"))
    members.in_ring = frozenset({"in-ring"})
    members.set_state("in-ring", "running")

    clock.now += 2.0
    members.heartbeat(beat("in-ring"))
    clock.now += 1.5  # "new" and "g1": 3.5 s silent; "in-ring": 1.5 s
    v = members.version
    assert members.check_timeouts() == ["g1", "new"]
    assert members.version > v
    assert [n.state for n in members.nodes()] == ["stop", "running", "stop"]
    assert members.check_timeouts() == []  # already stopped: no second transition

    clock.now += 2.0
    assert members.check_timeouts() == ["in-ring"]
    # back on the next heartbeat: to running when in the ring, else to attached; gateways to running
    assert members.heartbeat(beat("in-ring"))
    assert members.heartbeat(beat("new"))
    assert members.heartbeat(beat("g1", "gateway"))
    assert {n.name: n.state for n in members.nodes()} == {"in-ring": "running", "new": "attached", "g1": "running"}


def test_admin_states_do_not_time_out(store: ManagerStore) -> None:
    clock = Clock()
    members = Members(store, clock=clock, timeout=3.0)
    for name in ("a", "b"):
        members.register(storage(name, f"127.0.0.1:{name}"))
    members.set_state("a", "suspend")
    members.set_state("b", "detached")
    clock.now += 60
    assert members.check_timeouts() == []
    members.heartbeat(beat("a"))
    assert members.require("a").state == "suspend"


def test_heartbeat_records_hashes_and_unknown_nodes(store: ManagerStore) -> None:
    members = Members(store, clock=Clock())
    assert members.heartbeat(beat("ghost")) is None
    members.register(storage("s1"))
    node = members.heartbeat(HeartbeatRequest("storage", "s1", "aaaa0001", "aaaa0000"))
    assert node is not None
    assert (node.ring_hash_current, node.ring_hash_previous) == ("aaaa0001", "aaaa0000")
    # a restart keeps the reported hashes until the next heartbeat says otherwise
    assert members.register(storage("s1")).ring_hash_current == "aaaa0001"


def test_states_survive_a_manager_restart_with_a_grace_period(store: ManagerStore) -> None:
    clock = Clock()
    members = Members(store, clock=clock, timeout=3.0)
    members.register(storage("s1"))
    members.set_state("s1", "running")
    clock.now += 100
    again = Members(store, clock=clock, timeout=3.0)
    assert again.require("s1").state == "running"
    assert again.check_timeouts() == []  # every known node gets a full timeout after a restart
    clock.now += 3.5
    assert again.check_timeouts() == ["s1"]


def test_ring_member_cannot_move(store: ManagerStore) -> None:
    members = Members(store, clock=Clock())
    members.register(storage("s1", "127.0.0.1:4001"))
    # not in the ring yet: a new address is just taken
    assert members.register(storage("s1", "127.0.0.1:4009")).address == "127.0.0.1:4009"
    members.in_ring = frozenset({"s1"})
    with pytest.raises(ManagerError) as err:
        members.register(storage("s1", "127.0.0.1:4010"))
    assert err.value.code == "conflict"
