"""Timeouts per call type and per-node error budgets for calls between cluster processes.

:class:`CallTimeouts` bounds every internal call by its type: connecting; a call without object
data (metadata, deletes, listing pages, health), whole; a call carrying object data, by the longest
silence allowed (a PUT of at most a chunk is bounded in all: ``body`` plus a second per MiB). A
call without data made with ``coordinate`` role gets twice ``op``: its coordinator may spend one
``op`` on its own calls to the other replicas (a read's compare). A hung node (SIGSTOP, a black
hole: the kernel still accepts the connection) therefore costs a request a bounded delay, never a
stuck request.

:class:`NodeHealth` is a circuit breaker per node (LeoFS's callers skip a node marked failing):
a connect error or a timeout opens the node's breaker, and callers skip it for a cool-down, so no
request waits twice on a dead node. A background probe (``GET /int/health``) closes it again once
the node answers; a failed probe doubles the cool-down (up to a cap). Any HTTP answer, even an
error status, counts as alive: only failing to reach the node counts against its budget.
Callers that skip a node treat it as they treat a stopped one: a write queues a repair task for
it (W is met by real acknowledgements only), a read goes to the next replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

import aiohttp
from prometheus_client.core import Metric

from leofs import metrics
from leofs.config import DEFAULT_BODY_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_OP_TIMEOUT
from leofs.internal.client import InternalClient

log = logging.getLogger("leofs.internal.health")

#: failures that count against a node: it could not be reached or did not answer in time
NODE_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError, ConnectionError)
MIB = 1024 * 1024
T = TypeVar("T")


class CallTimeouts:
    """The aiohttp timeouts of each type of internal call."""

    def __init__(self, connect: float = DEFAULT_CONNECT_TIMEOUT, op: float = DEFAULT_OP_TIMEOUT,
                 body: float = DEFAULT_BODY_TIMEOUT) -> None:  # fmt: skip
        self.connect = connect
        self.op = op
        self.body = body

    def op_call(self, *, coordinated: bool = False) -> aiohttp.ClientTimeout:
        """A call without object data, whole."""
        return aiohttp.ClientTimeout(total=self.op * (2 if coordinated else 1), sock_connect=self.connect)

    def data_call(self, size: int) -> aiohttp.ClientTimeout:
        """A call sending or receiving one object body of ``size`` bytes (at most a chunk), whole.
        (A coordinator answers a write at W acks, so a replica that hangs does not hold it.)"""
        return aiohttp.ClientTimeout(total=self.body + size / MIB, sock_connect=self.connect)

    def stream_call(self) -> aiohttp.ClientTimeout:
        """A streamed read of any length: bounded by the silence between pieces, not in all (a
        coordinator's compare before the first byte takes at most ``op`` < ``body``)."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect, sock_read=self.body)


class NodeHealth:
    """A circuit breaker per node name (see the module docstring).

    ``probe(name)`` answers whether the node is reachable again (True) and is run in the background
    once a node's cool-down has passed; without one, the first caller after the cool-down is let
    through instead (half-open) and its outcome decides.
    """

    def __init__(self, probe: Callable[[str], Awaitable[bool]] | None = None, *, cooldown: float = 1.0,
                 cap: float = 8.0, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.probe = probe
        self.cooldown = cooldown
        self.cap = cap
        self.clock = clock
        self._open: dict[str, tuple[float, float]] = {}  # name -> (skipped until, current cool-down)
        self._probes: dict[str, asyncio.Task[None]] = {}
        self.skipped: Counter[str] = Counter()  # calls not made because the breaker was open
        self.failures: Counter[str] = Counter()
        _tracked.append(weakref.ref(self))

    def is_open(self, name: str) -> bool:
        return name in self._open

    def usable(self, name: str) -> bool:
        """False while ``name``'s breaker is open (callers skip it); starts the probe when due."""
        state = self._open.get(name)
        if state is None:
            return True
        until, cool = state
        if self.clock() >= until:
            if self.probe is None:
                self._open[name] = (self.clock() + cool, cool)  # half-open: this caller, others keep skipping
                return True
            if name not in self._probes:
                self._probes[name] = asyncio.ensure_future(self._run_probe(name, self.probe))
        self.skipped[name] += 1
        return False

    def failed(self, name: str) -> None:
        """``name`` could not be reached or timed out."""
        self.failures[name] += 1
        state = self._open.get(name)
        if state is None:
            log.warning("node %s failed a call: skipped for %.1f s, then probed", name, self.cooldown)
            self._open[name] = (self.clock() + self.cooldown, self.cooldown)
        else:  # in-flight calls failing after the breaker opened: the same cool-down, from now
            self._open[name] = (self.clock() + state[1], state[1])

    def succeeded(self, name: str) -> None:
        """``name`` answered (any HTTP status)."""
        if self._open.pop(name, None) is not None:
            log.warning("node %s answers again", name)

    async def _run_probe(self, name: str, probe: Callable[[str], Awaitable[bool]]) -> None:
        try:
            try:
                ok = await probe(name)
            except Exception:  # unreachable, timed out, no address: still failing
                ok = False
            if ok:
                self.succeeded(name)
            elif name in self._open:
                cool = min(self.cap, self._open[name][1] * 2)
                self._open[name] = (self.clock() + cool, cool)
        finally:
            self._probes.pop(name, None)

    def order(self, items: Iterable[T], name_of: Callable[[T], str]) -> list[T]:
        """``items`` with the usable ones first (in their order); skipped ones stay as a last resort."""
        items = list(items)
        usable = [self.usable(name_of(i)) for i in items]
        return [i for i, u in zip(items, usable, strict=True) if u] + [
            i for i, u in zip(items, usable, strict=True) if not u
        ]

    @contextlib.asynccontextmanager
    async def call(self, name: str) -> AsyncIterator[None]:
        """Count the call's outcome against ``name``: :data:`NODE_ERRORS` open its breaker."""
        try:
            yield
        except NODE_ERRORS:
            self.failed(name)
            raise
        self.succeeded(name)

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Per node: open?, seconds until the next probe, failures and skipped calls since start."""
        now = self.clock()
        names = set(self._open) | set(self.failures) | set(self.skipped)
        return {n: {"open": n in self._open, "probe_in": max(0.0, self._open[n][0] - now) if n in self._open else 0.0,
                    "failures": self.failures[n], "skipped": self.skipped[n]} for n in sorted(names)}  # fmt: skip

    async def close(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)


_tracked: list[weakref.ref[NodeHealth]] = []


def _breaker_metrics() -> Iterable[Metric]:
    open_: dict[tuple[str, ...], float] = {}
    failures: dict[tuple[str, ...], float] = {}
    skipped: dict[tuple[str, ...], float] = {}
    for ref in _tracked:
        health = ref()
        for name, row in (health.stats() if health is not None else {}).items():
            open_[(name,)] = open_.get((name,), 0) + (1 if row["open"] else 0)
            failures[(name,)] = failures.get((name,), 0) + row["failures"]
            skipped[(name,)] = skipped.get((name,), 0) + row["skipped"]
    yield metrics.gauge("leofs_node_breaker_open", "Whether this process skips the node (its last call failed)",
                        open_, ["node"])  # fmt: skip
    yield metrics.gauge("leofs_node_call_failures", "Calls to the node that failed to connect or timed out, "
                        "since this process started", failures, ["node"])  # fmt: skip
    yield metrics.gauge("leofs_node_calls_skipped", "Calls not made to the node while its breaker was open, "
                        "since this process started", skipped, ["node"])  # fmt: skip


metrics.register(_breaker_metrics)


def health_probe(client: InternalClient, timeouts: CallTimeouts,
                 address_of: Callable[[str], str | None]) -> Callable[[str], Awaitable[bool]]:  # fmt: skip
    """A :class:`NodeHealth` probe: ``GET /int/health`` on the node's address answers 200."""

    async def probe(name: str) -> bool:
        address = address_of(name)
        if address is None:
            return False
        async with client.request("GET", address, "/int/health", timeout=timeouts.op_call()) as resp:
            await resp.read()
            return bool(resp.status == 200)

    return probe
