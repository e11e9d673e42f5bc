"""Single flight: overlapping calls of one key run once; a failed or cancelled leader does not fail
the callers that waited for it."""

from __future__ import annotations

import asyncio

import pytest

from leofs.gateway.cache.flight import SingleFlight


def test_overlapping_calls_run_once() -> None:
    async def main() -> None:
        flight: SingleFlight[int] = SingleFlight()
        calls = 0
        gate = asyncio.Event()

        async def fetch() -> int:
            nonlocal calls
            calls += 1
            await gate.wait()
            return 42

        tasks = [asyncio.ensure_future(flight.run(b"k", fetch)) for _ in range(10)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*tasks) == [42] * 10
        assert calls == 1 and flight.joined == 9
        assert await flight.run(b"k", fetch) == 42 and calls == 2  # after it ended: a new call

    asyncio.run(main())


@pytest.mark.parametrize("how", ["raises", "cancelled"])
def test_waiters_call_again_when_the_leader_fails(how: str) -> None:
    async def main() -> None:
        flight: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()

        async def leader_call() -> str:
            await gate.wait()
            raise OSError("storage node gone")

        async def own_call() -> str:
            return "mine"

        leader = asyncio.ensure_future(flight.run(b"k", leader_call))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(flight.run(b"k", own_call))
        await asyncio.sleep(0)
        if how == "raises":
            gate.set()
            with pytest.raises(OSError):
                await leader
        else:
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
        assert await waiter == "mine"
        assert flight.in_flight(b"k") is None

    asyncio.run(main())
