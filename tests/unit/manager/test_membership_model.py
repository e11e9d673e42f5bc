"""A property test of the membership state machine: a pure model against Members + Cluster.

States: attached, running, suspend, stop, restarted, detached; transitions: register (a node
starts or restarts), heartbeats and timeouts, suspend, resume, detach, rebalance, settle and
rollback. After every step the manager's states and ring members must equal the model's.
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

    def teardown(self) -> None:
        self.cluster.store.close()
        self._dir.cleanup()

    # -- helpers ----------------------------------------------------------------------------------------
    @property
    def rebalancing(self) -> bool:
        return self.ring != self.previous

    def _agree(self) -> None:
        """Every node that is up reports the manager's ring hashes (no disagreement in this model)."""
        cur, prev = self.cluster.hashes
        for name, state in self.state.items():
            if state != "stop":
                self.cluster.members.heartbeat(HeartbeatRequest("storage", name, cur, prev))

    def _expect(self, ok: bool, action: object) -> None:
        self._agree()
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
        self.cluster.members.register(RegisterRequest("storage", name, f"127.0.0.1:{4000 + NAMES.index(name)}"))
        old = self.state.get(name)
        in_ring = name in self.ring | self.previous
        if old is None:
            self.state[name] = "attached"
        elif old == "stop":
            self.state[name] = "running" if in_ring else "attached"
        elif old == "detached":
            self.state[name] = "restarted"

    @rule(alive=st.sets(node))
    def time_passes(self, alive: set[str]) -> None:
        """A heartbeat timeout goes by; only the ``alive`` nodes heartbeat."""
        self.now += TIMEOUT + 1
        cur, prev = self.cluster.hashes
        for name in sorted(alive & set(self.state)):
            self.cluster.members.heartbeat(HeartbeatRequest("storage", name, cur, prev))
            if self.state[name] == "stop":
                self.state[name] = "running" if name in self.ring | self.previous else "attached"
        self.cluster.members.check_timeouts()
        for name, state in self.state.items():
            if name not in alive and state in ("running", "attached"):
                self.state[name] = "stop"

    @rule()
    def start(self) -> None:
        attached = [n for n, s in self.state.items() if s == "attached"]
        ok = not self.started and len(attached) >= N
        self._expect(ok, self.cluster.start)
        if ok:
            self.started = True
            self.ring = self.previous = set(attached)
            for n in attached:
                self.state[n] = "running"

    @rule(name=node)
    def suspend(self, name: str) -> None:
        ok = self.state.get(name) == "running"
        self._expect(ok, lambda: self.cluster.suspend(name))
        if ok:
            self.state[name] = "suspend"

    @rule(name=node)
    def resume(self, name: str) -> None:
        ok = self.state.get(name) in ("suspend", "restarted", "detached")
        self._expect(ok, lambda: self.cluster.resume(name))
        if ok:
            self.state[name] = "running" if name in self.ring | self.previous else "attached"

    @rule(name=node)
    def detach(self, name: str) -> None:
        state = self.state.get(name)
        ok = state in ("running", "stop", "suspend", "attached", "restarted") and not self.rebalancing
        if ok and state != "attached" and self.started:
            staying = [m for m in self.ring if m != name and self.state.get(m) != "detached"]
            ok = len(staying) >= N
        self._expect(ok, lambda: self.cluster.detach(name))
        if ok:
            self.state[name] = "detached"

    @rule()
    def rebalance(self) -> None:
        leaving = {n for n in self.ring if self.state.get(n) == "detached"}
        joining = {n for n, s in self.state.items() if s == "attached" and n not in self.ring}
        new = (self.ring - leaving) | joining
        ok = self.started and not self.rebalancing and bool(leaving or joining) and len(new) >= N
        self._expect(ok, self.cluster.rebalance)
        if ok:
            self.previous, self.ring = self.ring, new
            for n in joining:
                self.state[n] = "running"

    @rule()
    def settle(self) -> None:
        ok = self.started and self.rebalancing
        self._expect(ok, self.cluster.settle)
        if ok:
            self.previous = set(self.ring)

    @rule(name=node)
    def rollback(self, name: str) -> None:
        state = self.state.get(name)
        undo_detach = state == "detached" and name in self.ring and not self.rebalancing
        undo_attach = state == "attached" and name not in self.ring
        self._expect(undo_detach or undo_attach, lambda: self.cluster.rollback(name))
        if undo_detach:
            self.state[name] = "running"
        elif undo_attach:
            self.state[name] = "detached"

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
TestMembership.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
