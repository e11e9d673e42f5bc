"""FrameConnection on a real loopback TCP connection: small frames of one loop turn leave in one
write, in order, and a large frame is never split by them."""

from __future__ import annotations

import asyncio
import os

from leofs.internal.frames import FrameConnection

Frame = tuple[int, int, bytes, bytes]


class _Collector(FrameConnection):
    def __init__(self, frames: list[Frame], enough: asyncio.Event, want: int) -> None:
        super().__init__()
        self.frames, self.enough, self.want = frames, enough, want

    def frame_received(self, kind: int, rid: int, header: bytes, data: bytes | bytearray) -> None:
        self.frames.append((kind, rid, header, bytes(data)))
        if len(self.frames) >= self.want:
            self.enough.set()


class _Sender(FrameConnection):
    def frame_received(self, kind: int, rid: int, header: bytes, data: bytes | bytearray) -> None:
        raise AssertionError("the sender receives nothing")


def test_small_frames_of_one_turn_share_a_write_and_a_large_frame_is_never_split() -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # sent in pieces, after draining

    async def main() -> None:
        loop = asyncio.get_running_loop()
        frames: list[Frame] = []
        enough = asyncio.Event()
        server = await loop.create_server(lambda: _Collector(frames, enough, 202), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            transport, conn = await loop.create_connection(_Sender, "127.0.0.1", port)
            writes = 0
            real_write = transport.write

            def counting(data: bytes | bytearray | memoryview) -> None:
                nonlocal writes
                writes += 1
                real_write(data)

            transport.write = counting  # type: ignore[method-assign]
            for i in range(100):  # one turn: queued, then written together
                assert conn.try_send(30, i + 1, b"h%d" % i, b"d" * i)
            assert writes == 0
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert writes == 1
            for i in range(100, 200):  # queued in this turn, before a large frame starts
                assert conn.try_send(30, i + 1, b"h%d" % i, b"d" * (i % 7))
            await conn.send(31, 9999, b"big", big)
            assert conn.try_send(30, 10000, b"after", b"")
            await asyncio.wait_for(enough.wait(), 30)
            transport.close()
        finally:
            server.close()
        rids = [f[1] for f in frames]
        assert rids == [*range(1, 201), 9999, 10000][: len(rids)] and len(rids) == 202
        assert frames[199] == (30, 200, b"h199", b"d" * (199 % 7))
        assert frames[200] == (31, 9999, b"big", big)  # whole: no small frame inside it

    asyncio.run(main())
