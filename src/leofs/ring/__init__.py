"""The RING: weighted partition placement of keys on storage nodes (docs/ring.md).

Pure code, no I/O. :func:`build_ring` turns a member list (and the previous ring) into an immutable :class:`Ring`;
``Ring.redundancy(key)`` gives the N nodes that hold a key in a few microseconds.
"""

from leofs.ring.builder import build_ring, ring_from_bytes
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
]
