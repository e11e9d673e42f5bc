"""Anti-entropy digests: compare two replicas' holdings of the keys they share, by hash bucket.

Every key falls into one of :data:`BUCKETS` buckets by the top bits of its ring address (MD5). For
two nodes ``a`` and ``b``, each node scans its index once and folds the (ns, key, clock, tombstone)
of every key whose redundancy list (current ring) holds both nodes into its bucket's digest. Equal
digests mean equal holdings: a bucket costs 16 bytes of one exchange; only the keys of differing
buckets are then listed (:func:`versions_page`) and compared one by one.

The scans run in a worker thread on their own index connection (a read transaction in WAL mode, so
writes go on). Their cost is one pass over the node's index per peer compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from leofs.internal.messages import DigestReply, KeyVersion, VersionsReply, VersionsRequest
from leofs.ring import Ring
from leofs.ring.lookup import key_address
from leofs.storage.index import Index

#: hash buckets per digest exchange (2^10: 16 KiB of digests; each holds 1/1024 of the keys)
BUCKET_BITS = 10
BUCKETS = 1 << BUCKET_BITS
_SCAN_PAGE = 5000


def bucket_of(address: int) -> int:
    """The bucket of a ring address: its top :data:`BUCKET_BITS` bits."""
    return address >> (128 - BUCKET_BITS)


class Sharing:
    """Which keys two nodes both hold replicas of, in one ring (redundancy lists cached by vnode)."""

    def __init__(self, ring: Ring, a: str, b: str) -> None:
        self.ring = ring
        self.pair = {a, b}

    def shared(self, address: int) -> bool:
        names = {m.name for m in self.ring.redundancy_for_address(address)}
        return self.pair <= names


def _scan(index_path: Path) -> Iterator[tuple[int, bytes, int, bool, int]]:
    """(ns, key, clock, tombstone, timestamp) of every index entry, in (ns, key) order."""
    index = Index(index_path)
    try:
        after: tuple[int, bytes] | None = None
        while True:
            rows = _page(index, after, _SCAN_PAGE)
            yield from rows
            if len(rows) < _SCAN_PAGE:
                return
            after = (rows[-1][0], rows[-1][1])
    finally:
        index.close()


def _page(index: Index, after: tuple[int, bytes] | None, limit: int) -> list[tuple[int, bytes, int, bool, int]]:
    return index.versions(after, limit)


def _fold(h: hashlib.blake2b, ns: int, key: bytes, clock: int, tombstone: bool) -> None:
    h.update(b"%d:%d:%d:%d:" % (ns, len(key), clock, tombstone))
    h.update(key)


def digests(index_path: Path, sharing: Sharing) -> DigestReply:
    """The per-bucket digests of the keys ``sharing`` covers (blocking: run in a thread)."""
    hashes = [hashlib.blake2b(digest_size=16) for _ in range(BUCKETS)]
    counts = [0] * BUCKETS
    for ns, key, clock, tombstone, _ts in _scan(index_path):
        address = key_address(key)
        if sharing.shared(address):
            b = bucket_of(address)
            _fold(hashes[b], ns, key, clock, tombstone)
            counts[b] += 1
    return DigestReply([h.digest() for h in hashes], counts)


def versions_page(index_path: Path, sharing: Sharing, req: VersionsRequest) -> VersionsReply:
    """One page of :class:`VersionsRequest` (blocking): up to ``req.limit`` shared keys of the
    requested buckets; the scan stops after at most 10 x limit index rows so a page stays short."""
    wanted = None if req.buckets is None else set(req.buckets)
    after = None if req.after_ns is None else (req.after_ns, req.after_key)
    items: list[KeyVersion] = []
    index = Index(index_path)
    try:
        budget = max(1, req.limit) * 10
        while budget > 0 and len(items) < req.limit:
            rows = _page(index, after, min(_SCAN_PAGE, budget))
            if not rows:
                return VersionsReply(items)
            for ns, key, clock, tombstone, ts in rows:
                after = (ns, key)
                address = key_address(key)
                if (wanted is None or bucket_of(address) in wanted) and sharing.shared(address):
                    items.append(KeyVersion(ns, key, clock, tombstone, ts))
                    if len(items) >= req.limit:
                        break
            budget -= len(rows)
            if len(rows) < _SCAN_PAGE and len(items) < req.limit and budget > 0:
                return VersionsReply(items)  # the index is exhausted
    finally:
        index.close()
    assert after is not None
    return VersionsReply(items, after[0], after[1])


Cursor = tuple[int, bytes]


def local_versions(index_path: Path, sharing: Sharing, buckets: list[int] | None, after: Cursor | None,
                   last: Cursor | None) -> dict[Cursor, KeyVersion]:  # fmt: skip
    """This node's versions of the shared keys (of ``buckets``) in (after, last], or after ``after``
    to the end when ``last`` is None (blocking)."""
    wanted = None if buckets is None else set(buckets)
    out: dict[tuple[int, bytes], KeyVersion] = {}
    index = Index(index_path)
    try:
        while True:
            rows = _page(index, after, _SCAN_PAGE)
            for ns, key, clock, tombstone, ts in rows:
                if last is not None and (ns, key) > last:
                    return out
                address = key_address(key)
                if (wanted is None or bucket_of(address) in wanted) and sharing.shared(address):
                    out[(ns, key)] = KeyVersion(ns, key, clock, tombstone, ts)
            if len(rows) < _SCAN_PAGE:
                return out
            after = (rows[-1][0], rows[-1][1])
    finally:
        index.close()
