#!/usr/bin/env python
"""RING simulation: balance, movement on join/leave, build time and lookup cost; and the scale model.

Run by hand: ``python benchmarks/ring_sim.py [--quick] [--json FILE] [--keys K] [--vnodes V]``
(``--ring-only`` prints only the first table; ``--help`` lists the scale-model options).

For each cluster size it builds a partition ring of equal nodes (weight 168, N=3), and the vnode
ring it replaced (168 vnodes, ``ring_legacy.py``) side by side, and reports:

* balance: max/mean primary load of K sampled keys (``bucket/object-i``), and the exact max/mean of
  the address-space share (what infinitely many keys would give). The optimum is 1.0. With few keys
  per node the sampled figure also contains sampling noise; the exact one does not.
* movement: the fraction of keys whose primary changes when one node joins (optimum 1/(n+1)) and
  when one leaves (optimum 1/n), sampled and exact, plus the exact fraction of replica copies that
  move on a join (optimum also 1/(n+1)).
* ring build time and µs per ``Ring.redundancy(key)`` (MD5 + bisect + list copy) with N=3.

Then the scale model (docs/performance.md, "Scale model"):

* listing page cost: ``ClusterBackend.scan`` asks every running storage node for about its share of
  the page (``limit`` = max-keys + 1, as ``scan_page`` asks; 2 x N x limit / nodes, at least 16) and
  merges the answers, in further rounds while the page is short; the first table asks every node for
  the whole page (``limit`` rows, as before issue 15) for comparison. The nodes' keys are built from
  the ring (each key on its N nodes), the merge is the real ``ClusterBackend.scan`` with the HTTP
  fan-out replaced by answers cut from those keys, the node side is a real ``Index.range`` + ``to_scan_items`` +
  msgpack encoding on a temporary SQLite index, the gateway's decoding is the real
  ``scan_decoder.decode`` + ``from_scan_items``. The HTTP cost of a call is a constant
  (``--call-ms`` per call end, not measured here).
* rebalance cost: bytes moved on join and leave (exact, from the ring) for ``--data-tb`` of data,
  and the time at ``--rate-mbs`` per node, bounded by the busiest node (sent + received).
* control plane: the manager's work per heartbeat (the real ``Members.heartbeat`` + ``Cluster.view``
  + msgpack encoding on an in-memory manager store) for a member without a members version (the
  whole list) and for one holding the current version (only the changes), a member's work to apply
  each answer, the ring's serialized size, ``ring_from_bytes`` time and ``decode_rings`` of two equal
  rings, one ``/int/state`` snapshot and the ``SnapshotCache`` answer to every further gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec

from leofs.gateway.cluster_backend import ClusterBackend
from leofs.gateway.records import ObjectMeta
from leofs.gateway.remote_control import RemoteControl
from leofs.internal.client import InternalClient
from leofs.internal.membership import ClusterState, decode_rings
from leofs.internal.messages import (
    ClusterView,
    Consistency,
    HeartbeatRequest,
    NodeInfo,
    RegisterRequest,
    encoder,
    from_scan_items,
    scan_decoder,
    state_decoder,
    to_scan_items,
    view_decoder,
)
from leofs.manager.cluster import Cluster
from leofs.manager.members import Members
from leofs.manager.state_api import SnapshotCache, state_snapshot
from leofs.manager.store import ManagerStore
from leofs.ring import RING_SIZE, Member, Ring, RingPair, build_ring, key_address, ring_from_bytes
from leofs.storage.index import Index
from leofs.storage.model import CommonPrefix, Entry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ring_legacy import LegacyRing  # benchmarks/ is not a package: found through sys.path


def members(n: int, vnodes: int) -> list[Member]:
    return [
        Member(f"storage_{i}@10.0.{i // 250}.{i % 250}", f"10.0.{i // 250}.{i % 250}:4010", vnodes=vnodes)
        for i in range(n)
    ]


AnyRing = Ring | LegacyRing


def timed_build(ms: list[Member], replicas: int, previous: AnyRing | None = None, legacy: bool = False
                ) -> tuple[AnyRing, float]:
    """Build a partition ring (from ``previous``: minimal movement) or, with ``legacy``, the old vnode ring."""
    t0 = time.perf_counter()
    ring: AnyRing
    if legacy:
        ring = LegacyRing(ms, replicas)
    else:
        ring = build_ring(ms, replicas=replicas, previous=previous if isinstance(previous, Ring) else None)
    return ring, time.perf_counter() - t0


def primary_names(ring: AnyRing, addresses: list[int]) -> list[str]:
    lookup = ring.redundancy_for_address
    return [lookup(a)[0].name for a in addresses]


def exact_transfers(a: AnyRing, b: AnyRing) -> dict[str, Any]:
    """Exact movement from ring ``a`` to ring ``b``.

    Between two consecutive points of the union of both rings' points, both rings give constant
    answers, so summing segment widths is exact. Returns the fraction of the address space whose
    primary differs (``primary``), the fraction of replica copies that move (``copies``), and per node
    the share of the address space it receives plus sends (``traffic``): each copy a node gains is
    sent by the key's old holders that are still in ``b``, in equal parts.
    """
    cuts = sorted({hi for _, hi, _ in a.ranges()} | {hi for _, hi, _ in b.ranges()})
    in_b = {m.name for m in b.members}
    primary = 0
    copies = 0
    traffic: dict[str, float] = {}
    n = max(1, min(a.replicas, len(a.members)))
    prev = cuts[-1] - RING_SIZE
    for cut in cuts:
        width = cut - prev
        prev = cut
        ra = [m.name for m in a.redundancy_for_address(cut)]
        rb = [m.name for m in b.redundancy_for_address(cut)]
        if ra[0] != rb[0]:
            primary += width
        gained = [x for x in rb if x not in ra]
        if gained:
            copies += width * len(gained)
            w = width / RING_SIZE
            for x in gained:
                traffic[x] = traffic.get(x, 0.0) + w
            sources = [x for x in ra if x in in_b] or ra
            for x in sources:
                traffic[x] = traffic.get(x, 0.0) + w * len(gained) / len(sources)
    return {"primary": primary / RING_SIZE, "copies": copies / RING_SIZE / n, "traffic": traffic}


def exact_moved(a: AnyRing, b: AnyRing) -> tuple[float, float]:
    """Exact fraction of the address space whose primary differs, and of replica copies that move."""
    t = exact_transfers(a, b)
    return t["primary"], t["copies"]


def lookup_us(ring: AnyRing, keys: list[bytes]) -> float:
    redundancy = ring.redundancy
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for k in keys:
            redundancy(k)
        best = min(best, time.perf_counter() - t0)
    return best / len(keys) * 1e6


def copies_over_share(ring: AnyRing) -> float:
    """Busiest node's replica copies over its weighted share (exact; 1.0 = perfect balance)."""
    weighted = [m for m in ring.members if m.vnodes > 0]
    total = sum(m.vnodes for m in weighted)
    copies = ring.ownership(primary_only=False)
    r = min(ring.replicas, len(weighted))
    return max(copies[m.name] / (r * m.vnodes / total) for m in weighted)


def simulate(n: int, keys: list[bytes], addresses: list[int], vnodes: int, replicas: int,
             rings: dict[int, Ring] | None = None, legacy: bool = False) -> dict[str, Any]:
    ms = members(n, vnodes)
    ring, build_s = timed_build(ms, replicas, legacy=legacy)
    if rings is not None and isinstance(ring, Ring):
        rings[n] = ring
    newcomer = Member("storage_new@10.9.9.9", "10.9.9.9:4010", vnodes=vnodes)
    joined, join_s = timed_build([*ms, newcomer], replicas, ring, legacy=legacy)
    left, _ = timed_build(ms[1:], replicas, ring, legacy=legacy)

    base = primary_names(ring, addresses)
    counts = Counter(base)
    mean = len(addresses) / n
    share = ring.ownership()
    after_join = primary_names(joined, addresses)
    after_leave = primary_names(left, addresses)
    join_moved = sum(x != y for x, y in zip(base, after_join, strict=True)) / len(addresses)
    leave_moved = sum(x != y for x, y in zip(base, after_leave, strict=True)) / len(addresses)
    join = exact_transfers(ring, joined)
    leave = exact_transfers(ring, left)
    # optimum copies moved: the newcomer's share of the copies; on a leave, the leaver's (0 when
    # every node already holds everything, n <= N)
    leave_optimum = 1 / n if n > replicas else 0.0
    return {
        "ring": "vnode (before)" if legacy else "partition",
        "nodes": n,
        "vnodes": vnodes,
        "keys": len(addresses),
        "build_ms": build_s * 1e3,
        "rebuild_ms": join_s * 1e3,
        "lookup_us": lookup_us(ring, keys),
        "max_mean_keys": max(counts.get(m.name, 0) for m in ms) / mean,
        "min_mean_keys": min(counts.get(m.name, 0) for m in ms) / mean,
        "max_mean_exact": max(share.values()) * n,
        "max_copies_over_share": copies_over_share(ring),
        "join_moved_keys": join_moved,
        "join_moved_exact": join["primary"],
        "join_copies_moved_exact": join["copies"],
        "join_optimum": 1 / (n + 1),
        "leave_moved_keys": leave_moved,
        "leave_moved_exact": leave["primary"],
        "leave_optimum": leave_optimum,
        "ring_bytes": len(ring.to_bytes()) if isinstance(ring, Ring) else None,
        # scale model: copies moved on leave, and the busiest node's traffic (share of the address
        # space, sent + received) and how many nodes take part
        "leave_copies_moved_exact": leave["copies"],
        "join_busiest_traffic": max(join["traffic"].values(), default=0.0),
        "join_nodes_involved": len(join["traffic"]),
        "leave_busiest_traffic": max(leave["traffic"].values(), default=0.0),
        "leave_nodes_involved": len(leave["traffic"]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| nodes | ring | build ms | µs/lookup | busiest copies / weighted share | max/mean primary (exact) "
        "| copies moved on join (x optimum) | 1/(n+1) | copies moved on leave (x optimum) | 1/n |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        jx = r["join_copies_moved_exact"] / r["join_optimum"]
        lopt = r["leave_optimum"]
        lx = f"{r['leave_copies_moved_exact'] / lopt:.2f}" if lopt else "-"
        lines.append(
            f"| {r['nodes']} | {r['ring']} | {r['build_ms']:.0f} | {r['lookup_us']:.2f} "
            f"| {r['max_copies_over_share']:.3f} | {r['max_mean_exact']:.3f} "
            f"| {r['join_copies_moved_exact']:.4f} ({jx:.2f}) | {r['join_optimum']:.4f} "
            f"| {r['leave_copies_moved_exact']:.4f} ({lx}) | {lopt:.4f} |"
        )
    return "\n".join(lines)


# -- scale model: timing helpers ------------------------------------------------------------------------
def cpu_ms(fn: Callable[[], object], reps: int, inner: int = 1) -> float:
    """Best-of-``reps`` CPU time of ``inner`` calls of ``fn``, in ms per call (process CPU time, so
    other work on a shared machine inflates it less than wall time would)."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, time.process_time() - t0)
    return best / inner * 1e3


def _meta() -> bytes:
    """The ObjectMeta of a plain 4 KiB PUT, as the gateway stores it with every entry."""
    return msgspec.msgpack.encode(ObjectMeta(size=4096, etag="9e107d9d372bb6826bd81d3542a419d6", owner="user01",
                                             content_type="binary/octet-stream"))


def _entry(key: bytes, i: int, meta: bytes, md5: bytes) -> Entry:
    return Entry(0, key, 1_764_000_000_000_000 + i, 1_764_000_000_000_000 + i, False, 4096, md5, meta,
                 0, 0, 0, i % 8, 1, 4096 * i, i & 0xFFFFFFFF)  # fmt: skip


# -- scale model: listing page cost ----------------------------------------------------------------------
def listing_pages(ring: Ring, per_node: int) -> tuple[list[list[Entry]], list[bytes]]:
    """What every node answers to the first ``GET /scan`` of a bucket: its first ``per_node`` keys.

    Keys ``bucket/obj-0000000000``, ... in key order, each stored on its N nodes of ``ring``; keys
    are added until every node holds a full page."""
    meta, md5 = _meta(), bytes(range(16))
    pages: dict[str, list[Entry]] = {m.name: [] for m in ring.members}
    short = len(pages)
    keys: list[bytes] = []
    i = 0
    while short:
        key = b"bucket/obj-%010d" % i
        entry = _entry(key, i, meta, md5)
        keys.append(key)
        for m in ring.redundancy(key):
            page = pages[m.name]
            if len(page) < per_node:
                page.append(entry)
                if len(page) == per_node:
                    short -= 1
        i += 1
    return list(pages.values()), keys


class _PreparedFanOut(ClusterBackend):
    """The real ``ClusterBackend.scan`` (share, rounds, merge) with the HTTP fan-out replaced by answers
    cut from prepared per-node key lists. ``whole_page``: every node asked for the whole page, as
    before issue 15 (the same merge code with the share set to ``limit``)."""

    def __init__(self, state: ClusterState, pages: list[list[Entry]], keys: list[list[bytes]],
                 whole_page: bool = False) -> None:  # fmt: skip
        super().__init__(cast(InternalClient, None), state)
        self.pages = pages
        self.keys = keys
        self.whole_page = whole_page
        self.rounds = 0
        self.asked: list[int] = []
        self.rows = 0

    def _per_node(self, wanted: int, limit: int, copies: int, nodes: int) -> int:
        return limit if self.whole_page else super()._per_node(wanted, limit, copies, nodes)

    async def _scan_all(self, nodes: list[NodeInfo], ns: int, prefix: bytes, start: bytes, limit: int,
                        delimiter: bytes | None) -> list[list[Entry | CommonPrefix]]:
        self.rounds += 1
        self.asked.append(limit)
        out: list[list[Entry | CommonPrefix]] = []
        for page, keys in zip(self.pages, self.keys, strict=True):
            i = bisect.bisect_right(keys, start)
            out.append(cast(list[Entry | CommonPrefix], page[i : i + limit]))
        self.rows += sum(len(p) for p in out)
        return out


def node_scan_cost(limit: int, reps: int) -> dict[str, float]:
    """A storage node's side of one ``GET /scan`` (index range read, ScanReply, msgpack) and the
    gateway's decoding of the answer, measured on a temporary SQLite index of 20,000 entries."""
    meta, md5 = _meta(), bytes(range(16))
    entries = [_entry(b"bucket/obj-%010d" % i, i, meta, md5) for i in range(20_000)]
    with tempfile.TemporaryDirectory() as tmp:
        index = Index(Path(tmp) / "index.db", create=True)
        try:
            index.begin()
            index.put_entries(entries)
            index.commit()
            lo = entries[5_000].key

            def node_side() -> bytes:
                rows = index.range(0, lo, False, b"bucket0", limit, True)
                return cast(bytes, encoder.encode(to_scan_items(cast(list[Entry | CommonPrefix], rows))))

            body = node_side()
            scan = cpu_ms(node_side, reps, 5)
        finally:
            index.close()
    decode = cpu_ms(lambda: from_scan_items(scan_decoder.decode(body)), reps, 5)
    tracemalloc.start()
    held = from_scan_items(scan_decoder.decode(body))
    decoded_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    return {"node_scan_ms": scan, "decode_ms": decode, "reply_bytes": len(body), "decoded_bytes": decoded_bytes}


def _merge_run(state: ClusterState, pages: list[list[Entry]], key_lists: list[list[bytes]], first: list[bytes],
               whole_page: bool, reps: int) -> dict[str, Any]:  # fmt: skip
    """CPU, rounds, rows asked and fetched of the real ``ClusterBackend.scan`` over the prepared pages."""
    loop = asyncio.new_event_loop()
    returned: list[Entry | CommonPrefix] = []
    last: list[_PreparedFanOut] = []

    def merge() -> None:
        backend = _PreparedFanOut(state, pages, key_lists, whole_page)
        returned[:] = loop.run_until_complete(backend.scan(0, b"bucket/", limit=len(first)))
        last[:] = [backend]

    try:
        ms = cpu_ms(merge, reps)
    finally:
        loop.close()
    assert [e.key for e in returned if isinstance(e, Entry)] == first, "merged page differs from the keys"
    return {"merge_ms": ms, "rounds": last[0].rounds, "asked": last[0].asked[0], "rows": last[0].rows}


def listing_cost(ring: Ring, page: int, call_ms: float, node: dict[str, float], reps: int) -> dict[str, Any]:
    """One ListObjects page of ``page`` keys in a cluster of ``ring``'s nodes (the bucket's first page)."""
    limit = page + 1  # scan_page asks for max-keys + 1 to know whether the listing is truncated
    pages, keys = listing_pages(ring, limit)
    n = len(pages)
    horizon = min(p[-1].key for p in pages)  # every page is full: the smallest last key bounds what is certain
    in_window = sum(sum(1 for e in p if e.key <= horizon) for p in pages)
    unique = keys.index(horizon) + 1  # every key up to the horizon is in its holders' pages
    fetched = sum(len(p) for p in pages)
    state = ClusterState()
    state.nodes = {m.name: NodeInfo(m.name, "storage", m.address, "running") for m in ring.members}
    state.rings = RingPair(ring)
    key_lists = [[e.key for e in p] for p in pages]
    runs = {whole_page: _merge_run(state, pages, key_lists, keys[:limit], whole_page, reps)
            for whole_page in (True, False)}  # fmt: skip
    whole, built = runs[True], runs[False]
    assert whole["rounds"] == 1 and whole["rows"] == fetched
    merge_ms = whole["merge_ms"]
    gateway_ms = n * (call_ms + node["decode_ms"]) + merge_ms
    node_ms = call_ms + node["node_scan_ms"]
    # as built: the real merge's CPU (measured) plus call ends and decoding scaled per row from the
    # measured figures; a node's side scaled per row from its measured 1,001-row answer
    calls = n * built["rounds"]
    built_gateway = calls * call_ms + built["rows"] * node["decode_ms"] / limit + built["merge_ms"]
    built_cluster = built_gateway + calls * call_ms + built["rows"] * node["node_scan_ms"] / limit
    gc.collect()
    return {
        "nodes": n,
        "page": page,
        "calls": n,
        "rows_fetched": fetched,
        "rows_in_window": in_window,
        "unique_in_window": unique,
        "rows_returned": limit,
        "rows_discarded": fetched - limit,
        "duplicates": in_window - unique,
        "beyond_horizon": fetched - in_window,
        "merge_ms": merge_ms,
        "decode_ms": n * node["decode_ms"],
        "gateway_ms": gateway_ms,
        "node_ms": node_ms,
        "cluster_ms": gateway_ms + n * node_ms,
        "bytes_to_gateway": n * node["reply_bytes"],
        "decoded_bytes_held": n * node["decoded_bytes"],  # asyncio.gather holds every answer before the merge
        "pages_per_s_gateway_core": 1e3 / gateway_ms,
        "pages_per_s_nodes": 1e3 / node_ms,
        "built_per_node": built["asked"],
        "built_rounds": built["rounds"],
        "built_calls": calls,
        "built_rows": built["rows"],
        "built_merge_ms": built["merge_ms"],
        "built_gateway_ms": built_gateway,
        "built_cluster_ms": built_cluster,
    }


def listing_table(rows: list[dict[str, Any]], call_ms: float, node: dict[str, float]) -> str:
    head = (
        "| nodes | internal calls | rows fetched | rows ≤ horizon (unique) | rows discarded | merge ms (measured) "
        "| decode ms | gateway CPU ms (est.) | CPU ms on each node (est.) | cluster CPU ms (est.) | MB to gateway "
        "| MB decoded, held at once | pages/s: one gateway core / nodes |"
    )
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['nodes']} | {r['calls']:,} | {r['rows_fetched']:,} "
            f"| {r['rows_in_window']:,} ({r['unique_in_window']:,}) | {r['rows_discarded']:,} "
            f"| {r['merge_ms']:.1f} | {r['decode_ms']:.1f} | {r['gateway_ms']:.1f} | {r['node_ms']:.2f} "
            f"| {r['cluster_ms']:,.0f} | {r['bytes_to_gateway'] / 1e6:.1f} | {r['decoded_bytes_held'] / 1e6:.0f} "
            f"| {r['pages_per_s_gateway_core']:,.1f} / {r['pages_per_s_nodes']:,.0f} |"
        )
    lines.append("")
    lines.append(
        f"Per call: {call_ms} ms CPU per call end (--call-ms, assumed); node side {node['node_scan_ms']:.2f} ms "
        f"(index range + encode, measured), gateway decoding {node['decode_ms']:.2f} ms (measured), "
        f"{node['reply_bytes'] / 1e3:.0f} kB per answer, {node['decoded_bytes'] / 1e3:.0f} kB once decoded "
        "(tracemalloc). Gateway CPU = calls x (call end + decode) + merge; "
        "cluster CPU = gateway + nodes x (call end + node side). Not included: S3 auth and the XML of the page."
    )
    return "\n".join(lines)


def built_table(rows: list[dict[str, Any]]) -> str:
    head = ("| nodes | rows asked per node (first round) | rounds | internal calls | rows fetched "
            "| merge ms (measured) | gateway CPU ms (est.) | cluster CPU ms (est.) "
            "| vs whole page: gateway / cluster |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['nodes']} | {r['built_per_node']:,} | {r['built_rounds']} | {r['built_calls']:,} "
            f"| {r['built_rows']:,} | {r['built_merge_ms']:.1f} | {r['built_gateway_ms']:.1f} "
            f"| {r['built_cluster_ms']:,.0f} "
            f"| {r['gateway_ms'] / r['built_gateway_ms']:.1f}x / {r['cluster_ms'] / r['built_cluster_ms']:.1f}x |"
        )
    lines.append("")
    lines.append(
        "As built (ClusterBackend.scan, measured): each node asked for max(16, ceil(2 x N x (max-keys + 1) / nodes)) "
        "rows, at most max-keys + 1, further rounds from the horizon while the page is short. Merge CPU measured; "
        "call ends as above; decoding and the node side scaled per row from the figures above."
    )
    return "\n".join(lines)


# -- scale model: rebalance cost -------------------------------------------------------------------------
def rebalance_rows(rows: list[dict[str, Any]], data_tb: float, rate_mbs: float, replicas: int
                   ) -> list[dict[str, Any]]:
    out = []
    rate = rate_mbs * 1e6
    for r in rows:
        n = r["nodes"]
        fixed = data_tb * 1e12  # logical bytes (before the N copies)
        grown = fixed * n / 3  # the same fill per node as data_tb on 3 nodes
        row: dict[str, Any] = {"nodes": n}
        for event in ("join", "leave"):
            if event == "leave" and n - 1 < replicas:  # Cluster.detach refuses: fewer than N would stay
                row.update({f"leave_{k}": None for k in ("copies", "nodes_involved", "bytes_fixed", "bytes_grown",
                                                          "hours_fixed", "hours_grown")})
                continue
            copies = r[f"{event}_copies_moved_exact"]
            busiest = r[f"{event}_busiest_traffic"]
            row[f"{event}_copies"] = copies
            row[f"{event}_nodes_involved"] = r[f"{event}_nodes_involved"]
            for name, data in (("fixed", fixed), ("grown", grown)):
                row[f"{event}_bytes_{name}"] = copies * min(replicas, n) * data
                row[f"{event}_hours_{name}"] = busiest * data / rate / 3600
        out.append(row)
    return out


def rebalance_table(rows: list[dict[str, Any]], data_tb: float, rate_mbs: float) -> str:
    head = (
        f"| nodes | copies moved on join | join: TB moved ({data_tb:g} TB / {data_tb:g} TB per 3 nodes) | join: hours "
        f"| copies moved on leave | leave: TB moved ({data_tb:g} TB / {data_tb:g} TB per 3 nodes) "
        "| leave: nodes sending or receiving | leave: hours |"
    )
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        join = (
            f"| {r['nodes']} | {r['join_copies']:.4f} | {r['join_bytes_fixed'] / 1e12:,.2f} / "
            f"{r['join_bytes_grown'] / 1e12:,.2f} | {r['join_hours_fixed']:,.2f} / {r['join_hours_grown']:,.1f} "
        )
        if r["leave_copies"] is None:
            leave = "| — | — (detach refused: fewer than N nodes would stay) | — | — |"
        else:
            leave = (
                f"| {r['leave_copies']:.4f} | {r['leave_bytes_fixed'] / 1e12:,.2f} / "
                f"{r['leave_bytes_grown'] / 1e12:,.2f} | {r['leave_nodes_involved']} "
                f"| {r['leave_hours_fixed']:,.2f} / {r['leave_hours_grown']:,.1f} |"
            )
        lines.append(join + leave)
    lines.append("")
    lines.append(
        f"TB = 10^12 bytes of stored copies; data = {data_tb:g} TB of objects (before N copies), either fixed or "
        f"growing with the cluster ({data_tb:g} TB per 3 nodes). Hours = the busiest node's bytes sent + received "
        f"at {rate_mbs:g} MB/s per node (on a join the new node receives every moved copy; on a leave the lost "
        "copies are re-created from the surviving replicas, in equal parts)."
    )
    return "\n".join(lines)


# -- scale model: control plane ---------------------------------------------------------------------------
def control_cost(n: int, gateways: int, ring: Ring | None, reps: int) -> dict[str, Any]:
    """The manager's CPU per heartbeat with ``n`` storage nodes and ``gateways`` gateways registered."""
    store = ManagerStore(Path(":memory:"))
    try:
        members_ = Members(store)
        for i in range(n):
            members_.register(RegisterRequest("storage", f"storage_{i}@10.0.{i // 250}.{i % 250}",
                                              f"10.0.{i // 250}.{i % 250}:4010"))
        for j in range(gateways):
            members_.register(RegisterRequest("gateway", f"gateway_{j}@10.1.0.{j}", f"10.1.0.{j}:8080"))
        cluster = Cluster(store, members_, Consistency(n=3, w=2, r=1, d=2))
        log = members_.log
        # a member that has no members version (an old process, or the first beat) and one that is current
        whole_beat = HeartbeatRequest("storage", "storage_0@10.0.0.0")
        delta_beat = HeartbeatRequest("storage", "storage_0@10.0.0.0", members_epoch=log.epoch,
                                      members_version=log.version)  # fmt: skip

        def heartbeat(beat: HeartbeatRequest) -> bytes:  # StateAPI.heartbeat without the HTTP
            node = members_.heartbeat(beat)
            assert node is not None
            same = (beat.ring_hash_current, beat.ring_hash_previous) == cluster.hashes
            since = (beat.members_epoch, beat.members_version) if beat.members_epoch else None
            return cast(bytes, encoder.encode(cluster.view(with_rings=not same, since=since)))

        body = heartbeat(whole_beat)
        delta_body = heartbeat(delta_beat)
        inner = max(10, 2000 // (n + gateways))
        manager_ms = cpu_ms(lambda: heartbeat(whole_beat), reps, inner)
        delta_ms = cpu_ms(lambda: heartbeat(delta_beat), reps, inner * 10)
        member = ClusterState()
        apply_ms = cpu_ms(lambda: member.apply(view_decoder.decode(body)), reps, inner)
        delta_apply_ms = cpu_ms(lambda: member.apply(view_decoder.decode(delta_body)), reps, inner * 10)
        assert view_decoder.decode(delta_body).delta and not view_decoder.decode(delta_body).nodes
    finally:
        store.close()
    row: dict[str, Any] = {"nodes": n, "gateways": gateways, "heartbeat_bytes": len(body),
                           "manager_ms_per_beat": manager_ms, "member_apply_ms": apply_ms,
                           "delta_bytes": len(delta_body), "manager_ms_per_delta_beat": delta_ms,
                           "member_apply_delta_ms": delta_apply_ms}  # fmt: skip
    if ring is not None:
        blob = ring.to_bytes()
        row["ring_bytes"] = len(blob)
        row["ring_from_bytes_ms"] = cpu_ms(lambda: ring_from_bytes(blob), 1 if n >= 300 else reps)
        # what a member now does with a view whose current and previous rings are the same bytes
        # (after adm start, after a rebalance settles): one decode, in a thread (ClusterState.apply_async)
        same = ClusterView("running", Consistency(), [], ring_current=blob, ring_previous=blob)
        row["install_rings_ms"] = cpu_ms(lambda: decode_rings(same), 1 if n >= 300 else reps)
    return row


def state_cost(users: int, buckets: int, reps: int) -> dict[str, Any]:
    """One ``GET /int/state`` answer (what every gateway's long-poll gets after each change)."""
    store = ManagerStore(Path(":memory:"))
    try:
        for i in range(users):
            store.create_user(f"user{i:04d}")
        for i in range(buckets):
            store.create_bucket(f"bucket-{i:05d}", f"user{i % users:04d}")
        body = msgspec.json.encode(state_snapshot(store))
        ms = cpu_ms(lambda: msgspec.json.encode(state_snapshot(store)), reps, 5)
        # as built: SnapshotCache encodes once per version; every further gateway gets the same bytes
        cache = SnapshotCache(store)
        cache.body()
        cached_ms = cpu_ms(cache.body, reps, 100)
        assert cache.encoded == 1
    finally:
        store.close()
    control = RemoteControl(cast(InternalClient, None), "")
    install = cpu_ms(lambda: control._install(state_decoder.decode(body)), reps, 5)  # what RemoteControl.refresh does
    return {"users": users, "buckets": buckets, "state_bytes": len(body), "state_ms": ms, "install_ms": install,
            "cached_ms": cached_ms}


def control_table(rows: list[dict[str, Any]], call_ms: float, interval: float) -> str:
    head = (
        "| storage nodes | heartbeats/s (nodes + gateways) | answer bytes: whole list / changes only "
        "| manager ms per heartbeat: whole / changes (measured) | manager core busy: whole / changes (est.) "
        "| member ms to apply an answer: whole / changes (measured) | ring bytes "
        "| ring_from_bytes ms (before: x2 on the event loop per ring change) "
        "| ms to install equal rings, now (once, in a thread) |"
    )
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in rows:
        beats = (r["nodes"] + r["gateways"]) / interval
        busy = beats * (r["manager_ms_per_beat"] + call_ms) / 1e3
        delta_busy = beats * (r["manager_ms_per_delta_beat"] + call_ms) / 1e3
        r["manager_busy"] = busy
        r["manager_busy_delta"] = delta_busy
        lines.append(
            f"| {r['nodes']} | {beats:,.0f} | {r['heartbeat_bytes']:,} / {r['delta_bytes']:,} "
            f"| {r['manager_ms_per_beat']:.3f} / {r['manager_ms_per_delta_beat']:.3f} | {busy:.0%} / {delta_busy:.0%} "
            f"| {r['member_apply_ms']:.3f} / {r['member_apply_delta_ms']:.3f} | {r.get('ring_bytes', 0):,} "
            f"| {r.get('ring_from_bytes_ms', float('nan')):,.0f} | {r.get('install_rings_ms', float('nan')):,.0f} |"
        )
    lines.append("")
    lines.append(
        f"Heartbeat every {interval:g} s from every storage node and gateway ({rows[0]['gateways']} gateways); "
        f"manager core busy = heartbeats/s x (measured ms + {call_ms} ms for the HTTP end, assumed). \"Whole\": "
        "the answer to a member without a members version (its first beat, an old process, after a manager "
        "restart) carries every member; \"changes\": a member that holds the current version gets an answer "
        "without members (a change adds about 150 bytes per changed member, once to every member)."
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
    parser.add_argument("--ring-only", action="store_true", help="only the ring table (no scale model)")
    scale = parser.add_argument_group("scale model")
    scale.add_argument("--page", type=int, default=1000, help="keys per ListObjects page (max-keys, default 1000)")
    scale.add_argument("--call-ms", type=float, default=0.15,
                       help="CPU ms per internal HTTP call end (default 0.15: docs/performance.md says 0.1-0.2)")
    scale.add_argument("--data-tb", type=float, default=10.0,
                       help="TB of objects (before N copies) for the rebalance table (default 10)")
    scale.add_argument("--rate-mbs", type=float, default=100.0,
                       help="MB/s one node can send + receive during a rebalance (default 100)")
    scale.add_argument("--gateways", type=int, default=10, help="gateways heartbeating (default 10)")
    scale.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval in s (default 1, the code's)")
    scale.add_argument("--users", type=int, default=100, help="users in the /int/state snapshot (default 100)")
    scale.add_argument("--buckets", type=int, default=1000, help="buckets in the /int/state snapshot (default 1000)")
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
    legacy_rows: list[dict[str, Any]] = []
    rings: dict[int, Ring] = {}
    for n in sizes:
        row = simulate(n, lookup_keys, addresses, args.vnodes, args.replicas, rings)
        rows.append(row)
        legacy_rows.append(simulate(n, lookup_keys, addresses, args.vnodes, args.replicas, legacy=True))
        print(f"  {n} nodes done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    print(
        f"RING simulation: weight {args.vnodes}/node, N={args.replicas}, {nkeys:,} keys, "
        f"Python {platform.python_version()}; the partition ring side by side with the vnode ring before it\n"
    )
    print(table([r for pair in zip(rows, legacy_rows, strict=True) for r in pair]))
    result: dict[str, Any] = {"python": platform.python_version(), "rows": rows, "legacy_rows": legacy_rows}
    if not args.ring_only:
        del keys, addresses, lookup_keys
        reps = 2 if args.quick else 3
        node = node_scan_cost(args.page + 1, reps)
        listing = []
        for n in sizes:
            listing.append(listing_cost(rings[n], args.page, args.call_ms, node, reps))
            print(f"  listing {n} nodes done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        rebalance = rebalance_rows(rows, args.data_tb, args.rate_mbs, args.replicas)
        control = []
        for n in sizes:
            control.append(control_cost(n, args.gateways, rings.get(n), reps))
            print(f"  control plane {n} nodes done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        state = state_cost(args.users, args.buckets, reps)
        print(f"\nListing page cost: one ListObjectsV2 page of {args.page:,} keys (the bucket's first page), "
              f"N={args.replicas}, every node asked for the whole page (before issue 15)\n")
        print(listing_table(listing, args.call_ms, node))
        print("\nAs built: each node asked for about its share of the page (the same page, measured)\n")
        print(built_table(listing))
        print(f"\nRebalance cost: one node joins / leaves, N={args.replicas}\n")
        print(rebalance_table(rebalance, args.data_tb, args.rate_mbs))
        print("\nControl plane: the manager's heartbeat work and ring changes\n")
        print(control_table(control, args.call_ms, args.heartbeat))
        print(f"\n/int/state snapshot with {state['users']} users and {state['buckets']:,} buckets: "
              f"{state['state_bytes']:,} bytes, {state['state_ms']:.2f} ms CPU on the manager to build and encode, "
              f"{state['install_ms']:.2f} ms on a gateway to install (measured); every gateway fetches one after "
              "each change, and one per 20 s idle long-poll. Encoded once per version (SnapshotCache): every "
              f"further gateway's answer costs the manager {state['cached_ms'] * 1e3:.1f} µs besides HTTP (measured).")
        result.update({"listing": listing, "listing_per_call": node, "rebalance": rebalance, "control": control,
                       "state": state, "options": vars(args)})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
