"""Ring members: the storage nodes that own points on the RING.

A member is identified by its stable ``name``. Its ring positions are derived from its *alias*
(``node_`` + the first 8 hex digits of MD5(name), as LeoFS does), so a node keeps its positions
across restarts and address changes.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

DEFAULT_VNODES: Final = 168
"""LeoFS's default number of virtual nodes per storage node (``num_of_vnodes``)."""

ATTACHED: Final = "attached"
RUNNING: Final = "running"
SUSPEND: Final = "suspend"
STOP: Final = "stop"
RESTARTED: Final = "restarted"
DETACHED: Final = "detached"

NODE_STATES: Final[frozenset[str]] = frozenset({ATTACHED, RUNNING, SUSPEND, STOP, RESTARTED, DETACHED})
"""Every valid ``Member.state`` (LeoFS node states, see docs/design.md, "Roles")."""


def node_alias(name: str) -> str:
    """Return the LeoFS-style alias of a node name: ``node_`` + first 8 hex chars of MD5(name).

    The alias, not the name, seeds the vnode points, so ``MD5(f"{alias}_{i}")`` is vnode ``i``.
    """
    return "node_" + hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]


class Member(msgspec.Struct, frozen=True):
    """One storage node as the ring sees it.

    ``name`` is the node's stable identity (``leofs storage --name``); ``address`` is ``host:port``;
    ``rack`` is used by rack-aware placement (``None`` = unknown, treated as a rack of its own);
    ``vnodes`` is the node's weight (number of ring points, 0 = owns nothing); ``state`` is one of
    :data:`NODE_STATES`. The state is carried along for convenience but does not affect placement
    nor the ring hash.
    """

    name: str
    address: str
    rack: str | None = None
    vnodes: int = DEFAULT_VNODES
    state: str = RUNNING

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("member name must not be empty")
        if self.vnodes < 0:
            raise ValueError(f"member {self.name!r}: vnodes must be >= 0, got {self.vnodes}")
        if self.state not in NODE_STATES:
            raise ValueError(f"member {self.name!r}: unknown state {self.state!r}")

    @property
    def alias(self) -> str:
        """The LeoFS-style alias (see :func:`node_alias`)."""
        return node_alias(self.name)
