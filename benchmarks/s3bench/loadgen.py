"""Closed-loop load: ``concurrency`` workers each issue operations back to back until a deadline.

An operation is an async callable ``op(worker, i) -> bytes moved``; it raises on failure. Latency is
recorded per successful operation. Throughput is measured over the span from the start to the last
completion, so operations in flight at the deadline are allowed to finish and are counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Op = Callable[[int, int], Awaitable[int]]


@dataclass
class LoadResult:
    """Raw outcome of one closed-loop run."""

    ops: int = 0
    errors: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.elapsed / 1e6 if self.elapsed > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return math.nan
        data = sorted(self.latencies)
        rank = max(1, math.ceil(q / 100 * len(data)))
        return data[rank - 1] * 1000


async def run_closed_loop(op: Op, concurrency: int, duration: float, *, max_ops: int | None = None,
                          min_ops_per_worker: int = 0, timeout: float | None = None) -> LoadResult:
    """Run ``op`` from ``concurrency`` workers for ``duration`` seconds (or until ``max_ops`` are started).

    ``min_ops_per_worker`` keeps each worker going past the deadline until it has done that many
    (for very large objects); ``timeout`` bounds the whole run regardless (default duration x 4 + 60 s).
    """
    result = LoadResult()
    started = 0
    perf = time.perf_counter
    t0 = perf()
    deadline = t0 + duration
    last_done = t0
    inflight = 0

    async def worker(w: int) -> None:
        nonlocal started, last_done, inflight
        i = 0
        while True:
            now = perf()
            if now >= deadline and i >= min_ops_per_worker:
                return
            if max_ops is not None and started >= max_ops:
                return
            started += 1
            inflight += 1
            try:
                n = await op(w, i)
            except Exception as exc:
                inflight -= 1
                result.errors += 1
                if not result.first_error:
                    result.first_error = f"{type(exc).__name__}: {exc}"[:300]
                if result.errors > 1000 and result.errors > result.ops:
                    return
            else:
                inflight -= 1
                end = perf()
                result.latencies.append(end - now)
                result.ops += 1
                result.bytes += n
                last_done = end
            i += 1

    bound = timeout if timeout is not None else duration * 4 + 60
    try:
        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(concurrency))), bound)
    except TimeoutError:
        # requests still unanswered at the bound are failures (a hung request must not look fast)
        result.errors += inflight
        result.first_error = result.first_error or f"{inflight} request(s) unanswered after {bound:.0f} s"
        last_done = perf()
    result.elapsed = last_done - t0
    return result
