"""The build half of the RING: turn a member list into a precomputed :class:`~leofs.ring.lookup.Ring`.

Which members belong in the ring is the caller's decision; :func:`build_ring` places every member it
is given. LeoFS's rule, which the manager applies: at ``adm start`` the registered (``attached``)
nodes form the first ring; at a rebalance the new ring holds the previous ring's members minus those
marked ``detached``, plus the nodes ``attached`` since. Nodes that are merely down (``stop``) or in
maintenance (``suspend``) stay in the ring: their keys do not move, traffic just skips them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from leofs.ring.lookup import FORMAT_VERSION, Ring, snapshot_decoder
from leofs.ring.members import Member


def vnode_points(member: Member) -> list[int]:
    """The ring points of ``member``: MD5(f"{alias}_{i}") as 128-bit ints, for i in range(vnodes)."""
    alias = member.alias
    return [
        int.from_bytes(hashlib.md5(f"{alias}_{i}".encode(), usedforsecurity=False).digest(), "big")
        for i in range(member.vnodes)
    ]


def _plain_list(ext: list[int], start: int, target: int) -> list[int]:
    """Walk ``ext`` from ``start`` collecting ``target`` distinct owners (``ext`` is owners twice)."""
    picked: list[int] = []
    j = start
    while len(picked) < target:
        owner = ext[j]
        j += 1
        if owner not in picked:
            picked.append(owner)
    return picked


def _rack_list(ext: list[int], start: int, total: int, target: int, k: int, rack_of: list[int]) -> list[int]:
    """Walk from ``start``: the first ``k`` picks come from distinct racks, then fill in walk order.

    Nodes skipped for rack reasons are remembered and, once ``k`` racks are covered, are the first
    to fill the remaining slots (they come earlier in the walk than anything not yet visited).
    ``k`` must be achievable (at most the number of distinct racks in the ring).
    """
    picked: list[int] = []
    seen: set[int] = set()
    racks: set[int] = set()
    deferred: list[int] = []
    j = start
    end = start + total
    while j < end and len(picked) < target:
        owner = ext[j]
        j += 1
        if owner in seen:
            continue
        seen.add(owner)
        if len(picked) < k:
            rack = rack_of[owner]
            if rack in racks:
                deferred.append(owner)
                continue
            racks.add(rack)
            picked.append(owner)
            if len(picked) == k:
                picked.extend(deferred[: target - len(picked)])
                deferred = []
        else:
            picked.append(owner)
    if len(picked) < target:  # defensive: only if k was not achievable
        picked.extend(deferred[: target - len(picked)])
    return picked


def build_ring(members: Sequence[Member], *, replicas: int, rack_aware_replicas: int = 0) -> Ring:
    """Build the ring of ``members`` with ``replicas`` (N) copies per key.

    Every given member is placed (see the module docstring for who should be given). Each member
    owns ``vnodes`` points at MD5(f"{alias}_{i}"); a member with 0 vnodes is listed but owns no keys.
    With ``rack_aware_replicas=k > 0`` the first ``k`` nodes of each redundancy list are taken from
    distinct racks when the ring has that many (a member without a rack counts as a rack of its own),
    and the list is then filled in plain walk order.

    The result is deterministic: the same members in any order give the same ring and hash.
    Raises :class:`ValueError` for N < 1, k < 0, duplicate names or colliding aliases.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if rack_aware_replicas < 0:
        raise ValueError(f"rack_aware_replicas must be >= 0, got {rack_aware_replicas}")
    ordered = tuple(sorted(members, key=lambda m: m.name))
    aliases: dict[str, str] = {}
    for i, m in enumerate(ordered):
        if i and ordered[i - 1].name == m.name:
            raise ValueError(f"duplicate member name {m.name!r}")
        other = aliases.setdefault(m.alias, m.name)
        if other != m.name:
            raise ValueError(f"members {other!r} and {m.name!r} share the alias {m.alias}")

    # Sort points by (point, member index) so even an MD5 tie between two nodes is ordered canonically.
    pairs = sorted((p, idx) for idx, m in enumerate(ordered) for p in vnode_points(m))
    points = [p for p, _ in pairs]
    owners = [idx for _, idx in pairs]
    total = len(points)

    holders = sorted(set(owners))
    target = min(replicas, len(holders))
    rack_of: list[int] = []
    rack_ids: dict[str, int] = {}
    for idx, m in enumerate(ordered):
        if m.rack is None:
            rack_of.append(-1 - idx)  # unknown rack: a rack of its own
        else:
            rack_of.append(rack_ids.setdefault(m.rack, len(rack_ids)))
    k = min(rack_aware_replicas, target, len({rack_of[i] for i in holders}))

    ext = owners + owners
    lists: list[tuple[Member, ...]] = []
    interned: dict[tuple[int, ...], tuple[Member, ...]] = {}
    for start in range(total):
        picked = _rack_list(ext, start, total, target, k, rack_of) if k > 1 else _plain_list(ext, start, target)
        key = tuple(picked)
        entry = interned.get(key)
        if entry is None:
            entry = interned[key] = tuple(ordered[i] for i in picked)
        lists.append(entry)
    # Wrap-around: an address above the last point belongs to the first point.
    lists.append(lists[0] if lists else ())

    return Ring(
        members=ordered,
        replicas=replicas,
        rack_aware_replicas=rack_aware_replicas,
        points=points,
        owners=owners,
        lists=lists,
    )


def ring_from_bytes(data: bytes) -> Ring:
    """Decode :meth:`Ring.to_bytes` output and rebuild the tables.

    Raises :class:`ValueError` if the data is malformed, of an unknown version, or if the rebuilt
    ring's hash differs from the recorded one.
    """
    try:
        snap = snapshot_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid ring encoding: {exc}") from exc
    if snap.version != FORMAT_VERSION:
        raise ValueError(f"unsupported ring format version {snap.version}")
    ring = build_ring(snap.members, replicas=snap.replicas, rack_aware_replicas=snap.rack_aware_replicas)
    if ring.hash != snap.hash:
        raise ValueError(f"ring hash mismatch: recorded {snap.hash}, rebuilt {ring.hash}")
    return ring
