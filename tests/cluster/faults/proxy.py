"""A small asyncio TCP proxy, run in a thread of the test process, to put faults on the network path
to one node (tc netem is not available on these machines).

Modes: ``pass`` (forward), ``delay(s)`` (every piece of data waits ``s`` seconds each way),
``drop()`` (close every connection and refuse new ones), ``blackhole()`` (accept connections and
hold every byte: what a partitioned host looks like to TCP; the sender's buffers fill, nothing
answers), ``heal()`` (back to pass: held data flows on, as TCP retransmission would deliver it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    """Listens on 127.0.0.1:``port`` (chosen by the kernel) and forwards to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay = 0.0
        self.dropping = False
        self.connections = 0  # accepted so far
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=f"proxy->{target[1]}", daemon=True)
        self._thread.start()
        ready.wait(10)
        assert self._server is not None, "the proxy did not start"
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- control (from the test's thread) ---------------------------------------------------------
    def _call(self, fn: object) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()  # type: ignore[operator]
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def blackhole(self) -> None:
        self._call(self._flowing.clear)

    def drop(self) -> None:
        def close_all() -> None:
            self.dropping = True
            for w in list(self._writers):
                w.transport.abort()

        self._call(close_all)

    def heal(self) -> None:
        def back() -> None:
            self.dropping = False
            self.delay = 0.0
            self._flowing.set()

        self._call(back)

    @contextlib.contextmanager
    def blackholed(self) -> Iterator[None]:
        self.blackhole()
        try:
            yield
        finally:
            self.heal()

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- the proxy (in its thread) ----------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._flowing.set()
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=256)

        self._loop.run_until_complete(start())
        ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.dropping:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:  # the node is down: the client sees its connection closed
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            await self._flowing.wait()  # black-holed: hold the data, read no more
            if self.dropping:
                return
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()
