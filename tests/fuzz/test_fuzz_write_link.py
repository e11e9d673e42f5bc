"""Fuzz the write link (the Unix socket a gateway worker sends its writes over) on a real store:
garbage frames and out-of-range writes are refused one by one; they never fail a good write
sharing their batch, never wedge the writer, and never take the service down."""

from __future__ import annotations

import asyncio
import struct
import tempfile
from pathlib import Path

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from leofs.storage.store import ObjectStore
from leofs.storage.write_link import LinkLost, WriteLink, WriteRequest, WriteService
from tests.fuzz.profile import fuzz

#: a namespace: the engine gives namespaces no meaning
NS_OBJECT = 0

_FRAME = struct.Struct(">II")
_INTS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64]))


@st.composite
def write_requests(draw: st.DrawFn) -> WriteRequest:
    """Well-framed writes whose fields are anywhere in msgpack's integer range."""
    return WriteRequest(
        0, draw(st.booleans()), draw(_INTS), draw(st.binary(max_size=40)), draw(st.binary(max_size=40)),
        draw(st.one_of(st.none(), _INTS)), draw(st.one_of(st.none(), _INTS)), draw(_INTS), draw(_INTS),
        draw(_INTS), draw(st.one_of(st.none(), st.binary(min_size=16, max_size=16), st.binary(max_size=20))),
    )  # fmt: skip


async def _with_service(body: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        store = await ObjectStore.open(path / "data", containers=1, sync=False, reserve_bytes=0)
        service = WriteService(store, path / "w.sock")
        await service.start()
        try:
            await body(store, path / "w.sock")  # type: ignore[operator]
        finally:
            await service.close()
            await store.close()


async def _good_write(link: WriteLink, key: bytes) -> None:
    result = await link.submit(WriteRequest(0, False, NS_OBJECT, key), b"good data")
    assert result.applied and result.entry.key == key


@fuzz(0.15)
@given(bad=st.lists(write_requests(), min_size=1, max_size=4))
@example(bad=[WriteRequest(0, False, NS_OBJECT, b"k", cindex=2**32)])  # struct.error failed the whole batch
@example(bad=[WriteRequest(0, False, NS_OBJECT, b"k", clock=2**63 - 1)])  # poisoned every later clock
@example(bad=[WriteRequest(0, False, 2**32, b"k")])
def test_out_of_range_writes_fail_alone(bad: list[WriteRequest]) -> None:
    async def body(store: ObjectStore, sock: Path) -> None:
        link = await WriteLink.connect(sock)
        try:
            outcomes = await asyncio.gather(*(link.submit(r, b"x") for r in bad), _good_write(link, b"good-1"),
                                            return_exceptions=True)
            assert outcomes[-1] is None, outcomes[-1]  # the good write in the same batch
            for outcome in outcomes[:-1]:
                assert not isinstance(outcome, LinkLost | RuntimeError), outcome  # refused as invalid
            await _good_write(link, b"good-2")  # and the writer still works afterwards
        finally:
            await link.close()

    asyncio.run(_with_service(body))


@fuzz(0.15)
@given(frames=st.lists(st.one_of(
    st.binary(max_size=64),
    st.builds(lambda h, d: _FRAME.pack(len(h), len(d)) + h + d, st.binary(max_size=30), st.binary(max_size=30)),
    st.builds(lambda h: _FRAME.pack(len(h), 0) + h, st.just(msgspec.msgpack.encode(["w", 1, False, "x", b"k"]))),
), min_size=1, max_size=4))
@example(frames=[_FRAME.pack(2**32 - 1, 2**32 - 1)])
def test_garbage_frames_close_only_their_link(frames: list[bytes]) -> None:
    async def body(store: ObjectStore, sock: Path) -> None:
        _reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"".join(frames))
        await writer.drain()
        link = await WriteLink.connect(sock)  # another worker's link keeps working
        try:
            await _good_write(link, b"after-garbage")
        finally:
            await link.close()
            writer.close()

    asyncio.run(_with_service(body))
