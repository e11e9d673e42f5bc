"""Heartbeat answers carry only the members changed since the version the member holds.

The member log (``manager/member_log.py``) against its rules; the membership state machine of
``test_membership_model.py`` with members following the manager through delta answers (after
every step they must hold exactly the manager's member list); manager restarts (a new epoch: the
whole list); and old and new processes mixed (no members version: the whole list, both ways).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from leofs.internal.membership import ClusterState
from leofs.internal.messages import (
    ClusterView,
    Consistency,
    HeartbeatRequest,
    NodeInfo,
    RegisterRequest,
    encoder,
    view_decoder,
)
from leofs.manager.cluster import Cluster
from leofs.manager.member_log import MemberLog
from leofs.manager.members import Members
from leofs.manager.store import ManagerStore
from leofs.node.membership import NodeCluster
from tests.unit.manager.test_manager_http import AUTH, adm, manager, register, run
from tests.unit.manager.test_membership_model import Membership


def _since(state: ClusterState) -> tuple[str, int] | None:
    return (state.members_epoch, state.members_version) if state.members_epoch else None


def _beat(cluster: Cluster, state: ClusterState) -> ClusterView:
    """What a heartbeat answer carries for ``state`` (through msgpack, as on the wire), installed."""
    view = view_decoder.decode(encoder.encode(cluster.view(with_rings=False, since=_since(state))))
    state.apply(view)
    return view


def _as_dict(nodes: list[NodeInfo]) -> dict[str, NodeInfo]:
    return {n.name: n for n in nodes}


# -- the member log ---------------------------------------------------------------------------------------
def test_member_log_answers_changes_since_a_version() -> None:
    log = MemberLog()
    assert log.since(log.epoch, 0) == ([], [])
    log.changed("a")
    log.changed("b")
    v = log.version
    log.changed("a")  # a changed again: once, at its newest version
    log.removed("b")
    log.changed("c")
    assert log.since(log.epoch, v) == (["c", "a"], ["b"])
    assert log.since(log.epoch, log.version) == ([], [])
    assert log.since(log.epoch, 0) == (["c", "a"], ["b"])
    assert log.since("another epoch", v) is None  # another manager process: versions mean nothing
    assert log.since(log.epoch, log.version + 1) is None  # from the future: not this log's
    assert MemberLog().epoch != log.epoch


def test_member_log_forgets_removals_and_then_sends_the_whole_list() -> None:
    log = MemberLog(keep_removed=2)
    log.changed("a")
    before = log.version
    for name in ("x", "y", "z"):
        log.changed(name)
        log.removed(name)
    assert log.floor == log.version
    assert log.since(log.epoch, before) is None
    assert log.since(log.epoch, log.version) == ([], [])
    log.changed("a")
    assert log.since(log.epoch, log.floor) == (["a"], [])


# -- members following the manager through deltas, in the membership state machine -----------------------
class MembershipWithFollowers(Membership):
    """The membership model, with two members following the manager's member list: one heartbeats
    after every step, one only now and then (so that its deltas span many changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.eager = ClusterState()
        self.lazy = ClusterState()
        self.gateways: set[str] = set()

    @rule(name=st.sampled_from(["g0", "g1"]))
    def gateway_comes_and_goes(self, name: str) -> None:
        members = self.cluster.members
        if name in self.gateways:
            members.forget(name)
            self.gateways.discard(name)
        else:
            members.register(RegisterRequest("gateway", name, "127.0.0.1:8080"))
            self.gateways.add(name)

    @rule()
    def lazy_member_heartbeats(self) -> None:
        first = self.lazy.members_epoch == ""
        view = _beat(self.cluster, self.lazy)
        assert view.delta != first
        assert self.lazy.nodes == _as_dict(self.cluster.members.nodes())

    @invariant()
    def eager_member_holds_the_managers_list(self) -> None:
        first = self.eager.members_epoch == ""
        view = _beat(self.cluster, self.eager)
        assert view.delta != first  # the first answer is the whole list, every later one a delta
        assert self.eager.nodes == _as_dict(self.cluster.members.nodes())
        assert (self.eager.members_epoch, self.eager.members_version) == (
            self.cluster.members.log.epoch,
            self.cluster.members.log.version,
        )
        again = _beat(self.cluster, self.eager)  # nothing changed since: an answer without members
        assert again.delta and again.nodes == [] and again.removed == []


TestMembershipWithFollowers = MembershipWithFollowers.TestCase
TestMembershipWithFollowers.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)


# -- manager restarts and stale answers ---------------------------------------------------------------------
def _cluster(store: ManagerStore) -> Cluster:
    return Cluster(store, Members(store), Consistency(3, 2, 1, 2))


def test_a_restarted_manager_sends_the_whole_list(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    try:
        first = _cluster(store)
        for i in range(4):
            first.members.register(RegisterRequest("storage", f"s{i}", f"127.0.0.1:{4000 + i}"))
        member = ClusterState()
        _beat(first, member)
        assert len(member.nodes) == 4
        # the manager restarts: versions start again at 0, in another epoch
        second = _cluster(store)
        second.members.forget("s3")
        second.members.register(RegisterRequest("storage", "s4", "127.0.0.1:4004"))
        assert second.members.log.version <= first.members.log.version  # the same numbers mean other things
        view = _beat(second, member)
        assert not view.delta
        assert member.nodes == _as_dict(second.members.nodes())
        assert _beat(second, member).delta
    finally:
        store.close()


def test_an_older_answer_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    try:
        cluster = _cluster(store)
        cluster.members.register(RegisterRequest("storage", "s0", "127.0.0.1:4000"))
        member = ClusterState()
        _beat(cluster, member)
        stale_full = cluster.view(with_rings=False)
        stale_delta = cluster.view(with_rings=False, since=_since(member))
        cluster.members.register(RegisterRequest("storage", "s1", "127.0.0.1:4001"))
        _beat(cluster, member)
        assert set(member.nodes) == {"s0", "s1"}
        member.apply(stale_full)  # e.g. a push that crossed a newer heartbeat answer
        member.apply(stale_delta)
        assert set(member.nodes) == {"s0", "s1"}
    finally:
        store.close()


# -- old and new processes mixed ----------------------------------------------------------------------------
class OldHeartbeatRequest(msgspec.Struct, frozen=True):
    """HeartbeatRequest before members versions."""

    type: str
    name: str
    ring_hash_current: str = ""
    ring_hash_previous: str = ""
    admin_address: str = ""
    repair_queue: dict[str, int] | None = None


class OldClusterView(msgspec.Struct, frozen=True):
    """ClusterView before members versions."""

    state: str
    consistency: Consistency
    nodes: list[NodeInfo]
    ring_hash_current: str = ""
    ring_hash_previous: str = ""
    ring_current: bytes = b""
    ring_previous: bytes = b""


def test_old_members_and_old_managers_get_and_send_whole_lists(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    try:
        cluster = _cluster(store)
        for i in range(3):
            cluster.members.register(RegisterRequest("storage", f"s{i}", f"127.0.0.1:{4000 + i}"))
        # an old member's heartbeat decodes with no members version: StateAPI answers the whole list
        old_beat = msgspec.msgpack.decode(encoder.encode(OldHeartbeatRequest("storage", "s0")), type=HeartbeatRequest)
        assert old_beat.members_epoch == ""
        new_answer = encoder.encode(cluster.view(with_rings=False))
        assert len(msgspec.msgpack.decode(new_answer, type=OldClusterView).nodes) == 3  # an old member reads it
        # a new member and an old manager: the answer has no members version: installed whole
        member = ClusterState()
        member.members_epoch, member.members_version = "from another manager", 7
        old_answer = OldClusterView("running", Consistency(3, 2, 1, 2), cluster.members.nodes()[:2])
        member.apply(view_decoder.decode(encoder.encode(old_answer)))
        assert set(member.nodes) == {"s0", "s1"}
        assert (member.members_epoch, member.members_version) == ("", 0)  # next beat asks for the whole list
    finally:
        store.close()


# -- a storage node keeps the whole list in its cached view -------------------------------------------------
def test_a_storage_node_caches_the_whole_list_after_deltas(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    try:
        cluster = _cluster(store)
        for i in range(3):
            cluster.members.register(RegisterRequest("storage", f"s{i}", f"127.0.0.1:{4000 + i}"))
        cached = tmp_path / "view.msgpack"
        node = NodeCluster("s0", cached)
        _beat(cluster, node)
        cluster.members.heartbeat(HeartbeatRequest("storage", "s1"))
        cluster.members.register(RegisterRequest("storage", "s3", "127.0.0.1:4003"))
        assert _beat(cluster, node).delta
        assert set(node.nodes) == {"s0", "s1", "s2", "s3"}
        restarted = NodeCluster("s0", cached)
        assert restarted.nodes == node.nodes
        assert restarted.view is not None and not restarted.view.delta
    finally:
        store.close()


def test_rings_decoded_in_a_thread_once_when_current_and_previous_are_equal(tmp_path: Path) -> None:
    store = ManagerStore(tmp_path / "m.sqlite3")
    try:
        cluster = _cluster(store)
        for i in range(3):
            cluster.members.register(RegisterRequest("storage", f"s{i}", f"127.0.0.1:{4000 + i}"))
        cluster.start()
        view = view_decoder.decode(encoder.encode(cluster.view()))
        member = ClusterState()
        asyncio.run(member.apply_async(view))
        assert member.rings is not None and member.hashes == cluster.hashes
        assert member.rings.current is member.rings.previous  # one decode for equal bytes
        first = member.rings
        asyncio.run(member.apply_async(view))  # the same bytes again: not decoded again
        assert member.rings is first
    finally:
        store.close()


# -- over real loopback HTTP --------------------------------------------------------------------------------
def test_heartbeats_over_http_carry_only_the_changes(tmp_path: Path) -> None:
    async def test() -> None:
        async with manager(tmp_path) as (_, client):
            member = ClusterState()
            await member.apply_async(await register(client, RegisterRequest("storage", "s1", "127.0.0.1:1")))

            async def beat(name: str) -> ClusterView:
                body = encoder.encode(HeartbeatRequest("storage", name, members_epoch=member.members_epoch,
                                                       members_version=member.members_version))  # fmt: skip
                resp = await client.post("/int/heartbeat", data=body, headers=AUTH)
                assert resp.status == 200
                view = view_decoder.decode(await resp.read())
                await member.apply_async(view)
                return view

            quiet = await beat("s1")
            assert quiet.delta and quiet.nodes == [] and quiet.removed == []
            await register(client, RegisterRequest("storage", "s2", "127.0.0.1:2"))
            changed = await beat("s1")
            assert changed.delta and [n.name for n in changed.nodes] == ["s2"]
            assert set(member.nodes) == {"s1", "s2"}
            status, _ = await adm(client, "suspend", node="s2")
            assert status != 200  # an attached node cannot be suspended: nothing changed
            assert (await beat("s1")).nodes == []

    run(test)
