"""The rows of issue 6 and how each one prepares its data and issues its operations.

A ``Row`` is one line of the report (e.g. ``put-4k-c16``). ``Target`` holds one server's client and
the keys known to exist there, so GET, HEAD and DELETE rows use what earlier rows wrote (and top up
what is missing before the measurement starts, outside the timed window).
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .client import S3Client
from .loadgen import LoadResult, run_closed_loop

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
BUCKET = "bench"
STREAM_ABOVE = 256 * MiB
MPU_PART = 8 * MiB  # the aws CLI's default part size
MPU_PARALLEL = 4
_STREAM_CHUNK = 4 * MiB


def size_label(size: int) -> str:
    for unit, name in ((GiB, "g"), (MiB, "m"), (KiB, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{name}"
    return f"{size}b"


@dataclass(frozen=True)
class Row:
    """One workload row: ``op`` in put/get/head/delete/list/mixed, object ``size``, ``concurrency``."""

    op: str
    size: int = 0
    concurrency: int = 1
    keys: int = 0  # list: keys in the bucket; mixed: key-space size

    @property
    def id(self) -> str:
        if self.op == "list":
            return f"list-{self.keys}"
        return f"{self.op}-{size_label(self.size)}-c{self.concurrency}"

    @property
    def title(self) -> str:
        if self.op == "list":
            return f"list {self.keys:,} keys (ListObjectsV2, 1,000 a page)"
        if self.op == "mpu":
            return (f"{size_label(self.size)} multipart PUT ({size_label(MPU_PART)} parts, {MPU_PARALLEL} at a time), "
                    f"{self.concurrency} clients")
        if self.op == "mixed":
            return (f"mixed 80/20 GET/PUT {size_label(self.size)}, Zipf over {self.keys:,} keys, "
                    f"{self.concurrency} clients")
        return f"{size_label(self.size)} {self.op.upper()}, {self.concurrency} clients"

    @property
    def metric(self) -> str:
        """The headline figure: ``ops/s``, ``MB/s`` (large objects) or ``s`` per full listing."""
        if self.op == "list":
            return "s"
        if self.size >= MiB and self.op in ("put", "get", "mpu"):
            return "MB/s"
        return "ops/s"


def build_rows(*, quick: bool, sizes: list[int], concurrencies: list[int], large: list[tuple[int, int]],
               list_keys: list[int], mixed_keys: int, mixed_concurrency: list[int]) -> list[Row]:
    """All rows in run order: small-object ops per size and concurrency, large, list, mixed."""
    rows: list[Row] = []
    for size in sizes:
        for conc in concurrencies:
            rows += [Row(op, size, conc) for op in ("put", "get", "head", "delete")]
    for size, conc in large:
        rows += [Row("put", size, conc), Row("mpu", size, conc), Row("get", size, conc)]
    rows += [Row("list", 0, 1, n) for n in list_keys]
    rows += [Row("mixed", 4 * KiB, c, mixed_keys) for c in mixed_concurrency]
    return rows


class ZipfSampler:
    """Indices 0..n-1 with probability proportional to 1/(i+1)^s (rank 0 is the most popular)."""

    def __init__(self, n: int, s: float = 0.99, seed: int = 7) -> None:
        weights = [1.0 / (i + 1) ** s for i in range(n)]
        self.cum = list(itertools.accumulate(weights))
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        return bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])


@dataclass
class Target:
    """One server under test as the workloads see it: its client and the keys that exist on it."""

    name: str
    client: S3Client
    pools: dict[int, list[str]] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    delete_rate: float = 0.0


_bodies: dict[int, bytes] = {}


def body(size: int) -> bytes:
    """A random body of ``size`` bytes, made once per size (only for sizes held in memory)."""
    if size not in _bodies:
        _bodies[size] = os.urandom(size)
    return _bodies[size]


async def _stream(size: int) -> AsyncIterator[bytes]:
    chunk = body(_STREAM_CHUNK)
    sent = 0
    while sent < size:
        part = chunk if size - sent >= len(chunk) else chunk[: size - sent]
        sent += len(part)
        yield part


async def put_object(target: Target, key: str, size: int) -> int:
    if size > STREAM_ABOVE:
        return await target.client.put_stream(BUCKET, key, size, _stream(size))
    return await target.client.put(BUCKET, key, body(size))


async def _fill(target: Target, size: int, want: int, concurrency: int = 32) -> None:
    """Make sure at least ``want`` small objects of ``size`` exist in the pool (untimed)."""
    pool = target.pools.setdefault(size, [])
    missing = want - len(pool)
    if missing <= 0:
        return
    tag = next(target.seq)

    async def op(w: int, i: int) -> int:
        key = f"{size_label(size)}/fill{tag}-{w}-{i}"
        n = await put_object(target, key, size)
        pool.append(key)
        return n

    res = await run_closed_loop(op, concurrency, 3600, max_ops=missing, timeout=1800)
    if res.errors:
        raise RuntimeError(f"{target.name}: filling {missing} objects failed: {res.first_error}")


async def prepare(row: Row, target: Target, *, duration: float, quick: bool) -> None:
    """Untimed set-up for ``row`` on ``target``."""
    await target.client.create_bucket(BUCKET)
    if row.op in ("get", "head"):
        if row.size >= MiB:
            await _fill_large(target, row)
        else:
            await _fill(target, row.size, 200 if quick else 2000)
    elif row.op == "delete":
        guess = target.delete_rate * duration * 1.3 if target.delete_rate else (500 if quick else 4000)
        await _fill(target, row.size, int(min(max(guess, 200), 30000)))
    elif row.op == "list":
        await _fill_list(target, row.keys)
    elif row.op == "mixed":
        await _fill_mixed(target, row)


async def _fill_large(target: Target, row: Row) -> None:
    keys = [f"{size_label(row.size)}/w{w}" for w in range(row.concurrency)]
    have = target.pools.setdefault(row.size, [])
    for key in keys:
        if key not in have:
            await put_object(target, key, row.size)
            have.append(key)


async def _fill_list(target: Target, n: int) -> None:
    bucket = f"list-{n}"
    if bucket in target.filled:
        return
    await target.client.create_bucket(bucket)

    counter = itertools.count()

    async def op(w: int, i: int) -> int:
        return await target.client.put(bucket, f"k{next(counter):07d}", b"x")

    res = await run_closed_loop(op, 32, 3600, max_ops=n, timeout=3000)
    if res.errors:
        raise RuntimeError(f"{target.name}: filling {bucket} failed: {res.first_error}")
    count = 0
    token: str | None = None
    while True:
        got, token, _ = await target.client.list_page(bucket, token)
        count += got
        if token is None:
            break
    if count != n:
        raise RuntimeError(f"{target.name}: {bucket} lists {count} keys, expected {n}")
    target.filled.add(bucket)


async def _fill_mixed(target: Target, row: Row) -> None:
    tag = f"mixed-{row.keys}"
    if tag in target.filled:
        return

    counter = itertools.count()

    async def op(w: int, i: int) -> int:
        return await target.client.put(BUCKET, _mixed_key(next(counter)), body(row.size))

    res = await run_closed_loop(op, 32, 3600, max_ops=row.keys, timeout=1800)
    if res.errors:
        raise RuntimeError(f"{target.name}: filling the mixed key space failed: {res.first_error}")
    target.filled.add(tag)


def _mixed_key(rank: int) -> str:
    return f"mixed/{rank:07d}"


async def run_row(row: Row, target: Target, *, duration: float) -> LoadResult:
    """The timed part of ``row`` against ``target``."""
    client = target.client
    size = row.size
    if row.op == "put":
        if size >= MiB:
            return await run_closed_loop(lambda w, i: put_object(target, f"{size_label(size)}/w{w}", size),
                                         row.concurrency, duration, min_ops_per_worker=1,
                                         timeout=duration * 4 + 600)
        tag = next(target.seq)
        pool = target.pools.setdefault(size, [])

        async def put_op(w: int, i: int) -> int:
            key = f"{size_label(size)}/r{tag}-{w}-{i}"
            n = await client.put(BUCKET, key, body(size))
            pool.append(key)
            return n

        return await run_closed_loop(put_op, row.concurrency, duration)
    if row.op == "mpu":
        return await run_closed_loop(
            lambda w, i: client.put_multipart(BUCKET, f"{size_label(size)}/mpu{w}", size, MPU_PART, MPU_PARALLEL,
                                              _stream),
            row.concurrency, duration, min_ops_per_worker=1, timeout=duration * 4 + 600)
    if row.op in ("get", "head"):
        keys = list(target.pools[size])
        rng = random.Random(1)
        fn = client.get if row.op == "get" else client.head
        if size >= MiB:
            keys = keys[: row.concurrency]
            return await run_closed_loop(lambda w, i: fn(BUCKET, keys[w % len(keys)]), row.concurrency, duration,
                                         min_ops_per_worker=1, timeout=duration * 4 + 600)
        return await run_closed_loop(lambda w, i: fn(BUCKET, rng.choice(keys)), row.concurrency, duration)
    if row.op == "delete":
        pool = target.pools[size]
        victims = pool[:]
        pool.clear()

        async def delete_op(w: int, i: int) -> int:
            return await client.delete(BUCKET, victims.pop())

        res = await run_closed_loop(delete_op, row.concurrency, duration, max_ops=len(victims))
        pool.extend(victims)
        target.delete_rate = max(target.delete_rate, res.ops_per_s)
        return res
    if row.op == "list":
        bucket = f"list-{row.keys}"

        async def list_all(w: int, i: int) -> int:
            total = 0
            token: str | None = None
            while True:
                _, token, nbytes = await client.list_page(bucket, token)
                total += nbytes
                if token is None:
                    return total

        return await run_closed_loop(list_all, 1, duration, min_ops_per_worker=2, timeout=duration * 4 + 600)
    if row.op == "mixed":
        sampler = ZipfSampler(row.keys)
        rng = random.Random(3)
        data = body(size)

        async def mixed_op(w: int, i: int) -> int:
            key = _mixed_key(sampler())
            if rng.random() < 0.8:
                return await client.get(BUCKET, key)
            return await client.put(BUCKET, key, data)

        return await run_closed_loop(mixed_op, row.concurrency, duration)
    raise ValueError(f"unknown op {row.op}")
