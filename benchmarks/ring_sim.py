#!/usr/bin/env python
"""RING simulation: balance, movement on join/leave, build time and lookup cost.

Run by hand: ``python benchmarks/ring_sim.py [--quick] [--json FILE] [--keys K] [--vnodes V]``.

For each cluster size it builds a ring of equal nodes (168 vnodes, N=3) and reports:

* balance: max/mean primary load of K sampled keys (``bucket/object-i``), and the exact max/mean of
  the address-space share (what infinitely many keys would give). The optimum is 1.0. With few keys
  per node the sampled figure also contains sampling noise; the exact one does not.
* movement: the fraction of keys whose primary changes when one node joins (optimum 1/(n+1)) and
  when one leaves (optimum 1/n), sampled and exact, plus the exact fraction of replica copies that
  move on a join (optimum also 1/(n+1)).
* ring build time and µs per ``Ring.redundancy(key)`` (MD5 + bisect + list copy) with N=3.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from typing import Any

from leofs.ring import RING_SIZE, Member, Ring, build_ring, key_address


def members(n: int, vnodes: int) -> list[Member]:
    return [
        Member(f"storage_{i}@10.0.{i // 250}.{i % 250}", f"10.0.{i // 250}.{i % 250}:4010", vnodes=vnodes)
        for i in range(n)
    ]


def timed_build(ms: list[Member], replicas: int) -> tuple[Ring, float]:
    t0 = time.perf_counter()
    ring = build_ring(ms, replicas=replicas)
    return ring, time.perf_counter() - t0


def primary_names(ring: Ring, addresses: list[int]) -> list[str]:
    lookup = ring.redundancy_for_address
    return [lookup(a)[0].name for a in addresses]


def exact_moved(a: Ring, b: Ring) -> tuple[float, float]:
    """Exact fraction of the address space whose primary differs, and of replica copies that move.

    Between two consecutive points of the union of both rings' points, both rings give constant
    answers, so summing segment widths is exact.
    """
    cuts = sorted({hi for _, hi, _ in a.ranges()} | {hi for _, hi, _ in b.ranges()})
    primary = 0
    copies = 0
    n = max(1, min(a.replicas, len(a.members)))
    prev = cuts[-1] - RING_SIZE
    for cut in cuts:
        width = cut - prev
        prev = cut
        ra = [m.name for m in a.redundancy_for_address(cut)]
        rb = [m.name for m in b.redundancy_for_address(cut)]
        if ra[0] != rb[0]:
            primary += width
        copies += width * len(set(rb) - set(ra))
    return primary / RING_SIZE, copies / RING_SIZE / n


def lookup_us(ring: Ring, keys: list[bytes]) -> float:
    redundancy = ring.redundancy
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for k in keys:
            redundancy(k)
        best = min(best, time.perf_counter() - t0)
    return best / len(keys) * 1e6


def simulate(n: int, keys: list[bytes], addresses: list[int], vnodes: int, replicas: int) -> dict[str, Any]:
    ms = members(n, vnodes)
    ring, build_s = timed_build(ms, replicas)
    joined, _ = timed_build([*ms, Member("storage_new@10.9.9.9", "10.9.9.9:4010", vnodes=vnodes)], replicas)
    left, _ = timed_build(ms[1:], replicas)

    base = primary_names(ring, addresses)
    counts = Counter(base)
    mean = len(addresses) / n
    share = ring.ownership()
    after_join = primary_names(joined, addresses)
    after_leave = primary_names(left, addresses)
    join_moved = sum(x != y for x, y in zip(base, after_join, strict=True)) / len(addresses)
    leave_moved = sum(x != y for x, y in zip(base, after_leave, strict=True)) / len(addresses)
    join_exact, join_copies = exact_moved(ring, joined)
    leave_exact, _ = exact_moved(ring, left)
    return {
        "nodes": n,
        "vnodes": vnodes,
        "keys": len(addresses),
        "build_ms": build_s * 1e3,
        "lookup_us": lookup_us(ring, keys),
        "max_mean_keys": max(counts.get(m.name, 0) for m in ms) / mean,
        "min_mean_keys": min(counts.get(m.name, 0) for m in ms) / mean,
        "max_mean_exact": max(share.values()) * n,
        "join_moved_keys": join_moved,
        "join_moved_exact": join_exact,
        "join_copies_moved_exact": join_copies,
        "join_optimum": 1 / (n + 1),
        "leave_moved_keys": leave_moved,
        "leave_moved_exact": leave_exact,
        "leave_optimum": 1 / n,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| nodes | keys | build ms | µs/lookup | max/mean keys | max/mean exact | join moved (keys / exact) "
        "| replicas moved on join | 1/(n+1) | leave moved (keys / exact) | 1/n |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['nodes']} | {r['keys']:,} | {r['build_ms']:.0f} | {r['lookup_us']:.2f} "
            f"| {r['max_mean_keys']:.3f} | {r['max_mean_exact']:.3f} "
            f"| {r['join_moved_keys']:.4f} / {r['join_moved_exact']:.4f} "
            f"| {r['join_copies_moved_exact']:.4f} "
            f"| {r['join_optimum']:.4f} | {r['leave_moved_keys']:.4f} / {r['leave_moved_exact']:.4f} "
            f"| {r['leave_optimum']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100k keys, up to 300 nodes (a few seconds)")
    parser.add_argument(
        "--keys", type=int, default=None, help="sampled keys (default 1,000,000; quick 100,000)"
    )
    parser.add_argument("--vnodes", type=int, default=168)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--nodes", type=str, default=None, help="comma-separated cluster sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    sizes = [3, 10, 30, 100, 300] if args.quick else [3, 10, 30, 100, 300, 1000]
    if args.nodes:
        sizes = [int(x) for x in args.nodes.split(",")]
    nkeys = args.keys or (100_000 if args.quick else 1_000_000)
    keys = [f"bucket/object-{i}".encode() for i in range(nkeys)]
    addresses = [key_address(k) for k in keys]
    lookup_keys = keys[:100_000]

    t0 = time.perf_counter()
    rows = []
    for n in sizes:
        row = simulate(n, lookup_keys, addresses, args.vnodes, args.replicas)
        rows.append(row)
        print(f"  {n} nodes done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    print(
        f"RING simulation: {args.vnodes} vnodes/node, N={args.replicas}, {nkeys:,} keys, "
        f"Python {platform.python_version()}\n"
    )
    print(table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
