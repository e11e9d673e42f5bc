"""Transfer.fetch and Transfer.pull: a copy between replicas is checked against the source's CRC."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import msgspec
import pytest

from leofs.internal.messages import ROLE_REPLICA, Consistency, PutHeader
from leofs.node.node import StorageNodeOptions
from leofs.node.transfer import VersionGone
from leofs.storage.model import CorruptData
from tests.unit.node.nodetest_helpers import TestCluster


class _Cluster(TestCluster):
    __test__ = False

    def __init__(self, base: Path, binary: bool) -> None:
        super().__init__(base, ["s1", "s2"], Consistency(n=2, w=2, r=1, d=2))
        self.binary = binary

    def options(self, name: str) -> StorageNodeOptions:
        return dataclasses.replace(super().options(name), binary=self.binary)


def _run(tmp: Path, binary: bool, test: object) -> None:
    async def main() -> None:
        cluster = _Cluster(tmp, binary)
        try:
            for name in cluster.names:
                await cluster.start(name)
            await cluster.push_view()
            await asyncio.wait_for(test(cluster), 50)  # type: ignore[operator]
        finally:
            await cluster.close()

    asyncio.run(main())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "http"])
def test_a_damaged_large_copy_is_refused_and_never_stored(tmp_path: Path, binary: bool) -> None:
    """A large needle goes out with sendfile, unverified: the fetching node checks its CRC, so
    read-repair or recovery never stores a damaged copy here as a healthy one."""

    async def body(c: TestCluster) -> None:
        s1, s2 = c.nodes["s1"], c.nodes["s2"]
        data = os.urandom(s2.store.verify_below + 4096)  # above verify_below: sent unverified
        status, _ = await c.put("s2", b"big", data)
        assert status == 200
        entry = c.local("s2", b"big")
        assert entry is not None and c.local("s1", b"big") == entry
        transfer = s1.coordinator.transfer

        got, copied = await transfer.fetch("s2", entry)
        assert got.clock == entry.clock and bytes(copied) == data

        with pytest.raises(VersionGone):  # s2 holds another version than the one asked for
            await transfer.fetch("s2", msgspec.structs.replace(entry, clock=entry.clock - 1))

        log = s2.store._writer.logs[entry.container]  # flip one byte of s2's copy on disk
        flipped = bytes([data[100] ^ 0xFF])
        assert os.pwrite(log.fd, flipped, entry.data_offset + 100) == 1
        with pytest.raises(CorruptData):
            await transfer.fetch("s2", entry)

        # a version only s2 holds, damaged there: pulling it stores nothing on s1
        now = time.time_ns() // 1000
        status, only = await c.put("s2", b"only", data, role=ROLE_REPLICA, header=PutHeader(clock=now, timestamp=now))
        assert status == 200 and only is not None and c.local("s1", b"only") is None
        assert os.pwrite(s2.store._writer.logs[only.container].fd, bytes([data[7] ^ 0xFF]), only.data_offset + 7) == 1
        with pytest.raises(CorruptData):
            await transfer.pull("s2", only)
        assert c.local("s1", b"only") is None

    _run(tmp_path, binary, body)
