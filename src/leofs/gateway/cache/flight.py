"""Single flight: concurrent callers of one key share one call in progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """``run(key, call)``: the first caller makes the call; callers arriving while it is in progress
    wait for it and share its result. When the first caller fails or is cancelled, each waiting
    caller makes the call itself (one client going away never fails another's request)."""

    def __init__(self) -> None:
        self._calls: dict[bytes, asyncio.Future[T]] = {}
        self.joined = 0  # callers served by another's call (for tests and metrics)

    def in_flight(self, key: bytes) -> asyncio.Future[T] | None:
        """The call in progress for ``key``, if any."""
        return self._calls.get(key)

    async def wait(self, key: bytes) -> bool:
        """Wait for the call in progress for ``key`` (if any) to end; True if there was one and it
        succeeded."""
        future = self._calls.get(key)
        if future is None:
            return False
        await asyncio.wait([future])
        self.joined += 1
        return not future.cancelled() and future.exception() is None

    async def run(self, key: bytes, call: Callable[[], Awaitable[T]]) -> T:
        """The result of ``call()``, made once for the callers of ``key`` that overlap."""
        future = self._calls.get(key)
        if future is not None:
            await asyncio.wait([future])
            if not future.cancelled() and future.exception() is None:
                self.joined += 1
                return future.result()
            return await call()
        future = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            result = await call()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters make their own call
            raise
        finally:
            if self._calls.get(key) is future:
                del self._calls[key]
        future.set_result(result)
        return result
