"""A property test of the membership state machine: a pure model against Members + Cluster.

States: attached, running, recovering, suspend, stop, restarted, detached; transitions: register
(a node starts or restarts), heartbeats and timeouts, repair queues reported drained, suspend,
resume, detach, rebalance, settle and rollback. After every step the manager's states and ring
members must equal the model's.

A node of the ring that comes back (a heartbeat after ``stop``, or a new registration) is
``recovering`` until every other running or recovering node has reported, in two heartbeats since,
that no repair task toward it is left; then ``running``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from leofs.accounts import ManagerError
from leofs.internal.messages import Consistency, HeartbeatRequest, RegisterRequest
from leofs.manager.cluster import Cluster
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore

NAMES = [f"s{i}" for i in range(6)]
N = 3
TIMEOUT = 3.0
node = st.sampled_from(NAMES)


class Membership(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.now = 0.0
        store = ManagerStore(Path(self._dir.name) / "m.sqlite3")
        self.cluster = Cluster(store, Members(store, clock=lambda: self.now, timeout=TIMEOUT), Consistency(N, 2, 1, 2))
        self.state: dict[str, str] = {}  # the model
        self.ring: set[str] = set()  # current ring members
        self.previous: set[str] = set()
        self.started = False
        #: per recovering node: how many drained-queue reports each other node sent since it began
        self.reports: dict[str, dict[str, int]] = {}

    def teardown(self) -> None:
        self.cluster.store.close()
        self._dir.cleanup()

    # -- helpers ----------------------------------------------------------------------------------------
    @property
    def rebalancing(self) -> bool:
        return self.ring != self.previous

    def _tick(self) -> None:
        self.now += 0.001  # every message at its own time: "reported since" is strict in the manager

    def _enter(self, name: str, state: str) -> None:
        if state == "recovering" and self.state.get(name) != "recovering":
            self.reports[name] = {}
        if state != "recovering":
            self.reports.pop(name, None)
        self.state[name] = state

    def _promote(self) -> None:
        """The manager's promotion after each heartbeat: a recovering node is running once every
        other running or recovering node reported twice (the first report since only opens the window)."""
        for name in sorted(n for n, s in self.state.items() if s == "recovering"):
            reporters = [n for n, s in self.state.items() if n != name and s in ("running", "recovering")]
            if all(self.reports[name].get(r, 0) >= 2 for r in reporters):
                self._enter(name, "running")

    def _heartbeat(self, name: str, drained: bool = False) -> None:
        self._tick()
        cur, prev = self.cluster.hashes
        self.cluster.members.heartbeat(HeartbeatRequest("storage", name, cur, prev,
                                                        repair_queue={} if drained else None))
        if self.state[name] == "stop":
            self._enter(name, "recovering" if name in self.ring | self.previous else "attached")
        if drained:
            for reports in self.reports.values():
                reports[name] = reports.get(name, 0) + 1
        self._promote()

    def _agree(self) -> None:
        """Every node that is up reports the manager's ring hashes (no disagreement in this model)."""
        for name in sorted(self.state):
            if self.state[name] != "stop":
                self._heartbeat(name)

    def _expect(self, ok: bool, action: object) -> None:
        try:
            assert callable(action)
            action()
        except ManagerError:
            assert not ok, "the manager refused a transition the model allows"
            return
        assert ok, "the manager allowed a transition the model refuses"

    # -- rules ------------------------------------------------------------------------------------------
    @rule(name=node)
    def register(self, name: str) -> None:
        self._tick()
        self.cluster.members.register(RegisterRequest("storage", name, f"127.0.0.1:{4000 + NAMES.index(name)}"))
        old = self.state.get(name)
        in_ring = name in self.ring | self.previous
        if old is None:
            self._enter(name, "attached")
        elif old in ("stop", "running") and in_ring:
            self._enter(name, "recovering")  # a restarted process may have missed writes
        elif old == "stop":
            self._enter(name, "attached")
        elif old == "detached":
            self._enter(name, "restarted")

    @rule(alive=st.sets(node))
    def time_passes(self, alive: set[str]) -> None:
        """A heartbeat timeout goes by; only the ``alive`` nodes heartbeat."""
        self.now += TIMEOUT + 1
        for name in sorted(alive & set(self.state)):
            self._heartbeat(name)
        self.cluster.members.check_timeouts()
        for name, state in self.state.items():
            if name not in alive and state in ("running", "attached", "recovering"):
                self._enter(name, "stop")

    @rule()
    def repairs_drained(self) -> None:
        """Every node that is up reports, twice, no repair task left toward anyone."""
        for _ in range(2):
            for name in sorted(self.state):
                if self.state[name] != "stop":
                    self._heartbeat(name, drained=True)

    @rule()
    def start(self) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        attached = [n for n, s in self.state.items() if s == "attached"]
        ok = not self.started and len(attached) >= N
        self._expect(ok, self.cluster.start)
        if ok:
            self.started = True
            self.ring = self.previous = set(attached)
            for n in attached:
                self._enter(n, "running")

    @rule(name=node)
    def suspend(self, name: str) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        ok = self.state.get(name) == "running"
        self._expect(ok, lambda: self.cluster.suspend(name))
        if ok:
            self._enter(name, "suspend")

    @rule(name=node)
    def resume(self, name: str) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        ok = self.state.get(name) in ("suspend", "restarted", "detached", "recovering")
        self._expect(ok, lambda: self.cluster.resume(name))
        if ok:
            self._enter(name, "running" if name in self.ring | self.previous else "attached")

    @rule(name=node)
    def detach(self, name: str) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        state = self.state.get(name)
        ok = state in ("running", "stop", "suspend", "attached", "restarted", "recovering") and not self.rebalancing
        if ok and state != "attached" and self.started:
            staying = [m for m in self.ring if m != name and self.state.get(m) != "detached"]
            ok = len(staying) >= N
        self._expect(ok, lambda: self.cluster.detach(name))
        if ok:
            self._enter(name, "detached")

    @rule()
    def rebalance(self) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        leaving = {n for n in self.ring if self.state.get(n) == "detached"}
        joining = {n for n, s in self.state.items() if s == "attached" and n not in self.ring}
        new = (self.ring - leaving) | joining
        ok = self.started and not self.rebalancing and bool(leaving or joining) and len(new) >= N
        self._expect(ok, self.cluster.rebalance)
        if ok:
            self.previous, self.ring = self.ring, new
            for n in joining:
                self._enter(n, "running")

    @rule()
    def settle(self) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        ok = self.started and self.rebalancing
        self._expect(ok, self.cluster.settle)
        if ok:
            self.previous = set(self.ring)

    @rule(name=node)
    def rollback(self, name: str) -> None:
        self._agree()  # the nodes that are up report first (a heartbeat may promote a recovering node)
        state = self.state.get(name)
        undo_detach = state == "detached" and name in self.ring and not self.rebalancing
        undo_attach = state == "attached" and name not in self.ring
        self._expect(undo_detach or undo_attach, lambda: self.cluster.rollback(name))
        if undo_detach:
            self._enter(name, "running")
        elif undo_attach:
            self._enter(name, "detached")

    # -- invariants -------------------------------------------------------------------------------------
    @invariant()
    def manager_matches_the_model(self) -> None:
        assert {n.name: n.state for n in self.cluster.members.nodes("storage")} == self.state
        rings = self.cluster.rings
        if rings is None:
            assert not self.started
            return
        assert {m.name for m in rings.current.members} == self.ring
        assert {m.name for m in rings.previous.members} == self.previous
        assert len(self.ring) >= N
        # writes never go to a node that is not in the current ring, and every key has N owners
        assert all(len(lst) == N for lst in rings.current.partition_lists()[:64])


TestMembership = Membership.TestCase
TestMembership.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
