"""Property test: the store behaves like a dict through puts, deletes, compactions and restarts."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from leofs.storage.model import Entry
from leofs.storage.store import ObjectStore

KEYS = st.sampled_from([b"a", b"a/b", b"a/c", b"b", b"k" * 1024, "ü/x".encode(), b"z/1", b"z/2"])
DATA = st.binary(max_size=300)


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="leofs-model-"))
        self.loop = asyncio.new_event_loop()
        self.model: dict[bytes, bytes] = {}
        self.store = self._open()

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def _open(self) -> ObjectStore:
        return self._run(  # type: ignore[no-any-return]
            ObjectStore.open(self.dir, containers=3, sync=False, reserve_bytes=0, tombstone_grace=0.0)
        )

    @rule(key=KEYS, data=DATA, meta=st.binary(max_size=20))
    def put(self, key: bytes, data: bytes, meta: bytes) -> None:
        assert self._run(self.store.put(0, key, data, meta=meta)).applied
        self.model[key] = data

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self._run(self.store.delete(0, key)).applied
        self.model.pop(key, None)

    @rule(key=KEYS, data=DATA)
    def stale_put(self, key: bytes, data: bytes) -> None:
        # A write with an ancient clock only lands where no entry (not even a tombstone) exists.
        absent = self.store.get(0, key) is None
        assert self._run(self.store.put(0, key, data, clock=1)).applied == absent
        if absent:
            self.model[key] = data

    @rule(which=st.sampled_from([None, [0], [1, 2]]))
    def compact(self, which: list[int] | None) -> None:
        self._run(self.store.compact(which))

    @rule()
    def reopen(self) -> None:
        self._run(self.store.close())
        self.store = self._open()

    @invariant()
    def matches(self) -> None:
        listed = {e.key for e in self.store.scan(0) if isinstance(e, Entry)}
        assert listed == set(self.model)
        for k, v in self.model.items():
            e = self.store.get(0, k)
            assert e is not None and not e.tombstone
            assert self._run(self.store.read(e)) == v

    def teardown(self) -> None:
        self._run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


StoreModel.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestStoreModel = StoreModel.TestCase
