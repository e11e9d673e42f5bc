"""The ping's probe: one probe at a time, its answer kept for a second, failures answered False."""

from __future__ import annotations

import asyncio

import pytest

from leofs.gateway import health
from leofs.gateway.health import Health


def test_no_probe_is_healthy() -> None:
    assert asyncio.run(Health().ok())


def test_concurrent_pings_share_one_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    answer = True

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return answer

    async def scenario() -> None:
        nonlocal answer
        checker = Health(probe)
        assert await asyncio.gather(*(checker.ok() for _ in range(50))) == [True] * 50
        assert calls == 1
        assert await checker.ok()  # fresh: no new probe
        assert calls == 1
        answer = False
        monkeypatch.setattr(health, "FRESH_FOR", 0.0)
        assert not await checker.ok()  # stale: probed again
        assert calls == 2

    asyncio.run(scenario())


def test_a_failing_probe_is_unhealthy_and_a_cancelled_ping_does_not_stop_it() -> None:
    started = asyncio.Event()

    async def broken() -> bool:
        raise OSError("unreachable")

    async def slow() -> bool:
        started.set()
        await asyncio.sleep(0.05)
        return True

    async def scenario() -> None:
        assert not await Health(broken).ok()
        checker = Health(slow)
        first = asyncio.ensure_future(checker.ok())
        await started.wait()
        first.cancel()
        assert await checker.ok()  # the probe went on for the second caller

    asyncio.run(scenario())
