"""A storage node back after a stop is ``recovering`` until every running node reports an empty
repair queue toward it (twice since it came back); driven by an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from leofs.internal.messages import HeartbeatRequest, RegisterRequest
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def members(tmp_path: Path) -> tuple[Members, Clock]:
    clock = Clock()
    members = Members(ManagerStore(tmp_path / "m.sqlite3"), clock=clock, timeout=3.0)
    for i in (1, 2, 3):
        members.register(RegisterRequest("storage", f"s{i}", f"127.0.0.1:400{i}"))
        members.set_state(f"s{i}", "running")
    members.in_ring = frozenset({"s1", "s2", "s3"})
    return members, clock


def beat(name: str, **queue: int) -> HeartbeatRequest:
    return HeartbeatRequest("storage", name, repair_queue=dict(queue))


def state(members: Members, name: str) -> str:
    return members.require(name).state


def test_back_node_waits_for_the_queues_toward_it(members: tuple[Members, Clock]) -> None:
    m, clock = members
    clock.now += 5
    m.heartbeat(beat("s1", s3=4))
    m.heartbeat(beat("s2"))
    assert m.check_timeouts() == ["s3"]
    clock.now += 1
    m.heartbeat(beat("s3"))
    assert state(m, "s3") == "recovering"
    assert m.repair_pending("s3") == {"s1": None, "s2": None}  # no report since it came back
    for _ in range(2):
        clock.now += 1
        m.heartbeat(beat("s1", s3=2))
        m.heartbeat(beat("s2"))
    assert state(m, "s3") == "recovering" and m.repair_pending("s3") == {"s1": 2, "s2": 0}
    clock.now += 1
    m.heartbeat(beat("s1"))  # drained
    assert state(m, "s3") == "running"
    assert m.repair_pending("s3") == {}


def test_one_report_after_the_return_is_not_enough(members: tuple[Members, Clock]) -> None:
    """The first report after the return may have been counted before the reporter learnt it: wait
    for a second one."""
    m, clock = members
    clock.now += 5
    m.check_timeouts()
    clock.now += 1
    m.register(RegisterRequest("storage", "s2", "127.0.0.1:4002"))  # a restart registers again
    assert state(m, "s2") == "recovering"
    clock.now += 1
    m.heartbeat(beat("s1"))
    m.heartbeat(beat("s3"))
    assert state(m, "s2") == "recovering"
    clock.now += 1
    m.heartbeat(beat("s1"))
    m.heartbeat(beat("s3"))
    assert state(m, "s2") == "running"


def test_stopped_nodes_are_not_waited_for_and_a_recovering_node_can_stop_again(
        members: tuple[Members, Clock]) -> None:  # fmt: skip
    m, clock = members
    clock.now += 5
    m.heartbeat(beat("s1"))
    assert m.check_timeouts() == ["s2", "s3"]
    clock.now += 1
    m.heartbeat(beat("s3"))
    assert state(m, "s3") == "recovering"
    clock.now += 4  # s3 dies again while recovering; s1 never reported twice
    m.heartbeat(beat("s1"))
    assert m.check_timeouts() == ["s3"]
    clock.now += 1
    m.heartbeat(beat("s3"))
    assert m.repair_pending("s3") == {"s1": None}  # s2 is stopped: not waited for
    for _ in range(2):
        clock.now += 1
        m.heartbeat(beat("s1"))
    assert state(m, "s3") == "running"


def test_the_state_survives_a_manager_restart(members: tuple[Members, Clock], tmp_path: Path) -> None:
    m, clock = members
    clock.now += 5
    m.heartbeat(beat("s1"))
    m.heartbeat(beat("s2"))
    m.check_timeouts()
    m.heartbeat(beat("s3"))
    again = Members(m.store, clock=clock, timeout=3.0)
    again.in_ring = m.in_ring
    assert state(again, "s3") == "recovering"
    for _ in range(2):
        clock.now += 1
        again.heartbeat(beat("s1"))
        again.heartbeat(beat("s2"))
    assert state(again, "s3") == "running"


def test_a_restart_within_the_timeout_recovers_too(members: tuple[Members, Clock]) -> None:
    """A process restarted before the manager noticed may still have missed writes."""
    m, clock = members
    clock.now += 1
    assert m.register(RegisterRequest("storage", "s1", "127.0.0.1:4001")).state == "recovering"
    for _ in range(2):
        clock.now += 1
        m.heartbeat(beat("s2"))
        m.heartbeat(beat("s3", s1=1))
    assert state(m, "s1") == "recovering"
    clock.now += 1
    m.heartbeat(beat("s3"))
    assert state(m, "s1") == "running"
