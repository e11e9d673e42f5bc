"""The RING: consistent-hash placement of keys on storage nodes (docs/design.md, "The RING").

Pure code, no I/O. :func:`build_ring` turns a member list into an immutable :class:`Ring`;
``Ring.redundancy(key)`` gives the N nodes that hold a key in a few microseconds.
"""

from leofs.ring.builder import build_ring, ring_from_bytes, vnode_points
from leofs.ring.lookup import RING_SIZE, Ring, key_address
from leofs.ring.members import DEFAULT_VNODES, NODE_STATES, Member, node_alias
from leofs.ring.pair import RingPair

__all__ = [
    "DEFAULT_VNODES",
    "NODE_STATES",
    "RING_SIZE",
    "Member",
    "Ring",
    "RingPair",
    "build_ring",
    "key_address",
    "node_alias",
    "ring_from_bytes",
    "vnode_points",
]
