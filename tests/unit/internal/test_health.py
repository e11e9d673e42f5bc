"""The per-node circuit breaker (error budgets) and the timeouts per call type, against a real
listener that accepts connections and never answers (what a SIGSTOPped node looks like)."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest

from leofs.internal.health import CallTimeouts, NodeHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_node_is_skipped_then_probed_and_closed_again() -> None:
    async def body() -> None:
        clock = Clock()
        answers: list[bool] = [False, True]
        probed: list[str] = []

        async def probe(name: str) -> bool:
            probed.append(name)
            return answers.pop(0)

        health = NodeHealth(probe, cooldown=1.0, cap=8.0, clock=clock)
        assert health.usable("a")
        health.failed("a")
        assert not health.usable("a") and health.usable("b")
        assert health.order(["a", "b", "c"], str) == ["b", "c", "a"]  # skipped last, not dropped
        clock.now += 1.5
        assert not health.usable("a")  # due: the probe runs in the background, callers still skip
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert probed == ["a"] and health.is_open("a")  # the probe failed: cool-down doubled
        clock.now += 1.5
        assert not health.usable("a")  # 2 s now, only 1.5 s passed: no probe yet
        await asyncio.sleep(0)
        assert probed == ["a"]
        clock.now += 1.0
        assert not health.usable("a")
        for _ in range(3):
            await asyncio.sleep(0)
        assert probed == ["a", "a"] and not health.is_open("a") and health.usable("a")
        assert health.stats()["a"]["failures"] == 1 and health.stats()["a"]["skipped"] >= 4
        await health.close()

    asyncio.run(body())


def test_without_a_probe_one_caller_is_let_through_after_the_cool_down() -> None:
    clock = Clock()
    health = NodeHealth(None, cooldown=1.0, clock=clock)
    health.failed("a")
    assert not health.usable("a")
    clock.now += 1.1
    assert health.usable("a")  # half-open: this caller tries
    assert not health.usable("a")  # the others keep skipping meanwhile
    health.succeeded("a")
    assert health.usable("a")


def test_only_failing_to_reach_a_node_counts() -> None:
    async def body() -> None:
        health = NodeHealth(None)
        with pytest.raises(ValueError):
            async with health.call("a"):
                raise ValueError("a bad answer is an answer")
        assert health.usable("a")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with health.call("a"):
                raise aiohttp.ClientConnectionError("refused")
        assert not health.usable("a")

    asyncio.run(body())


def test_a_silent_node_costs_a_call_its_timeout_not_more() -> None:
    """A listener that accepts and never answers: the op and data timeouts end the call."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    timeouts = CallTimeouts(connect=0.5, op=0.3, body=0.4)

    async def call(timeout: aiohttp.ClientTimeout, data: bytes | None = None) -> float:
        start = time.monotonic()
        async with aiohttp.ClientSession() as session:
            with pytest.raises((TimeoutError, aiohttp.ServerTimeoutError)):
                async with session.put(f"http://127.0.0.1:{port}/obj", data=data, timeout=timeout) as resp:
                    await resp.read()
        return time.monotonic() - start

    async def body() -> None:
        assert await call(timeouts.op_call()) < 3.0
        assert await call(timeouts.data_call(1000), b"x" * 1000) < 3.0
        assert await call(timeouts.stream_call()) < 3.0

    try:
        asyncio.run(body())
    finally:
        listener.close()
